#!/usr/bin/env python
"""Window-length study: one fit run per training window length, then their comparison report.

    python scripts/study_window_length.py                          # 4000/6000/8000/12000, the trainer's epochs
    python scripts/study_window_length.py epochs=12 out=runs/wl model=tds_conv_ctc
    python scripts/study_window_length.py smoke=true               # 1 epoch of a tiny model, to try it out

The emg2qwerty course reports compared training windows of 4000 to 12000 samples (2 to 6 s) and
found 8000 best. This reproduces that comparison on emgtf's default (synthetic) data, or on any
data the trailing ``key=value`` fit overrides choose (``data.root=... data.split=...``). Each
length trains with ``emgtf.training.train`` into ``OUT/window_<length>/`` and its best
checkpoint is evaluated on whole test sessions, as ``python -m emgtf.fit`` does; validation runs
in windows of the length being studied, so the test CER is the number to compare. Running the
same command again continues: finished runs are kept, an interrupted one resumes from its
``last.keras``. The report (``python -m emgtf.report`` of the runs) goes to ``OUT/report/``.

``smoke=true`` trains a tiny TCN for one epoch per length: it checks the study end to end in a
minute or two; its error rates mean nothing.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emgtf.cli import run  # noqa: E402
from emgtf.cli.parsing import ArgumentParser  # noqa: E402
from emgtf.errors import EmgtfError  # noqa: E402

LENGTHS = (4000, 6000, 8000, 12000)
SMOKE = (
    "model=tcn", "model.mlp_features=[16]", "model.hidden_size=8", "model.num_layers=1",
    "model.spec_augment=false", "augment=none", "trainer.batch_size=4", "trainer.val_batch_size=8",
    "logger=none",
)


def _lengths(text: str) -> list[int]:
    try:
        lengths = [int(n) for n in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated integers: {text!r}") from None
    if any(n < 1 for n in lengths):
        raise argparse.ArgumentTypeError(f"window lengths must be positive: {text!r}")
    return lengths


def run_one(overrides: list[str], run_dir: Path):
    """Trains (or resumes, or finds finished) the run in ``run_dir`` and evaluates its best
    checkpoint on the test split unless already done; returns the run folder."""
    from emgtf import config
    from emgtf.console import console_log
    from emgtf.inference.evaluation import default_output, evaluate_checkpoint
    from emgtf.training import train

    if (run_dir / "last.keras").is_file():
        cfg = config.load_saved(run_dir / "config.yaml")  # the config it started with
        cfg.resume, cfg.run_dir = True, str(run_dir)
    else:
        cfg = config.compose("fit", [*overrides, f"run_dir={run_dir}"])
    result = train(cfg, log=console_log("emgtf.fit"))
    best = result.best_checkpoint
    report = default_output(best, "test", cfg.decoder) if best is not None else None
    # A resumed run may have found a new best checkpoint after its report was written.
    if best is not None and (not report.is_file() or report.stat().st_mtime < best.stat().st_mtime):
        saved = config.load_saved(run_dir / "config.yaml")
        evaluate_checkpoint(best, part="test", decoder_cfg=cfg.decoder, root=saved.data.root,
                            split=saved.data.split, overwrite=True,
                            log=console_log("emgtf.evaluate"))
    return run_dir


def fresh(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="scripts/study_window_length.py", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="fit overrides for every run")
    parser.add_argument("--out", type=Path, help="study folder (default: runs/study-window-length-<date>-<time>)")
    parser.add_argument("--lengths", type=_lengths, default=list(LENGTHS), metavar="N,N,...",
                        help=f"window lengths in samples (default: {','.join(map(str, LENGTHS))})")
    parser.add_argument("--epochs", type=int, help="epochs per run (default: the trainer's trainer.epochs; smoke=true: 1)")
    parser.add_argument("--smoke", action="store_true", help="one epoch of a tiny model per length")
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (1 if args.smoke else None)
    if epochs is not None and epochs < 1:
        raise EmgtfError(f"epochs must be >= 1, got {epochs}")
    for override in args.overrides:
        if override.split("=", 1)[0].lstrip("+~") in ("run_dir", "resume", "trainer.window_length"):
            raise EmgtfError(f"{override}: the study sets this key itself")
    out = args.out or Path("runs") / f"study-window-length-{datetime.now():%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)

    base = [*(SMOKE if args.smoke else ()), *([f"trainer.epochs={epochs}"] if epochs else []), *args.overrides]
    if epochs is None:
        from emgtf import config

        epochs = int(config.compose("fit", base).trainer.epochs)
    runs = []
    for length in args.lengths:
        print(f"study: window length {length} samples ({length / 2000:g} s), {epochs} epoch(s)", flush=True)
        runs.append(run_one([*base, f"trainer.window_length={length}"], out / f"window_{length}"))

    from emgtf.reporting.build import read_inputs, write_report

    inputs = read_inputs(runs)
    files = write_report(inputs, fresh(out / "report"))
    print(f"\n{'window':>7}  {'best val CER':>12}  {'test CER':>8}")
    for length, r in zip(args.lengths, inputs.runs):
        best, test = r.best_val_cer, r.test_cer
        print(f"{length:>7}  {'-' if best is None else f'{best:.2f}':>12}  {'-' if test is None else f'{test:.2f}':>8}")
    print(f"report: {files[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main, "study_window_length"))
