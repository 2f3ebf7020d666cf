"""``python -m emgtf.report PATH [PATH ...] [--out DIR]``: figures and an HTML page of runs.

Each PATH is a run folder (``python -m emgtf.fit``), a tune folder (``python -m emgtf.tune``: its
``trials/trial_*/`` runs) or an evaluation report (``python -m emgtf.evaluate``'s JSON). Writes
PNG and SVG figures, ``summary.csv`` and a self-contained ``index.html`` into ``--out`` (default:
``<folder>/report/`` for one folder, ``<report>-report/`` beside one JSON, else a fresh
``reports/<date>-<time>-compare/``); an existing non-empty folder is refused. Runs are labelled by
their model family and the config keys that differ between them. Details: ``emgtf.reporting``.
"""

from __future__ import annotations

import sys

from emgtf.cli.parsing import ArgumentParser


def main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="python -m emgtf.report", description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="run folder, tune folder or evaluation report (.eval.json)")
    parser.add_argument("--out", metavar="DIR", help="folder to write (must not exist or be empty)")
    args = parser.parse_args(argv)

    from pathlib import Path

    from emgtf.reporting.build import default_out, read_inputs, write_report

    inputs = read_inputs(args.paths, warn=lambda message: print(message, file=sys.stderr))
    out = Path(args.out) if args.out else default_out(inputs)
    files = write_report(inputs, out)
    for run_ in inputs.runs:
        best = run_.best_val_cer
        test = run_.test_cer
        print(f"{run_.label}: best val CER {'-' if best is None else f'{best:.2f}'} "
              f"(epoch {run_.best_epoch or '-'}), test CER {'-' if test is None else f'{test:.2f}'}")
    print(f"report: {files[-1]} ({len(files)} files in {out})")
    return 0

