"""Writes a report folder from run folders, tune folders and evaluation reports.

What a folder holds:

- runs given: ``curves.png/.svg`` (loss, val CER/IER/DER/SER, learning rate per epoch, runs
  overlaid), with several runs ``best_cer.png/.svg`` (best val CER and test CER per run), and
  ``summary.csv`` (one row per run: label, folder, best epoch, best val rates, test CER and the
  config keys that differ between the runs);
- a tune folder that swept one hyperparameter (the ``channels``, ``fraction``, ``sample_rate`` or
  ``preprocessing`` space): ``sweep_<name>.png/.svg``, val and test CER against the swept value,
  and its table;
- an error analysis per evaluation report (a JSON given, or a single run's own test report):
  ``[prefix]confusion``, ``[prefix]substitutions`` and ``[prefix]key_rates`` (PNG and SVG), and
  from ``python -m emgtf.evaluate ... report=true`` (which has the model) ``alignment``, the
  alignment view of one session;
- ``index.html``: every figure (embedded) and the numbers as tables.

All inputs are read and checked before the folder is created, so a bad input leaves nothing
behind; an existing non-empty folder is never written into.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from emgtf.errors import EmgtfError
from emgtf.files import fresh_path
from emgtf.reporting import html
from emgtf.reporting.alignment import AlignmentView
from emgtf.reporting.error_analysis import EditAnalysis, analyze_edits, report_pairs
from emgtf.reporting.runs import RATES, Run, format_value, label_runs, load_runs, read_json
from emgtf.reporting.sweep import Sweep, load_sweeps

HISTORY_COLUMNS = (
    ("epoch", "d"), ("train/loss", ".4f"), ("val/loss", ".4f"), ("val/CER", ".2f"), ("val/IER", ".2f"),
    ("val/DER", ".2f"), ("val/SER", ".2f"), ("val/rendered_CER", ".2f"), ("lr", ".3e"), ("seconds", ".1f"),
)
TOP_SUBSTITUTIONS = 20
NAMING_NOTE = (
    "Edit operations are those of rapidfuzz Levenshtein.editops(prediction, target), named as the "
    "emg2qwerty reference names them: an insertion is a typed key the decoding missed, a deletion a "
    "decoded key that was not typed (emgtf.metrics and the IER/DER columns above use the opposite, "
    "speech-recognition naming; the totals agree)."
)


@dataclass
class Evaluation:
    """One evaluation report and its error analysis; ``prefix`` starts its figure file names."""

    path: Path
    report: dict
    analysis: EditAnalysis
    prefix: str = ""
    title: str = ""
    alignment: AlignmentView | None = None  # one session's alignment view (evaluate report=true)


@dataclass
class Inputs:
    """What a report is made of, read and checked."""

    runs: list[Run] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)  # as given
    sweeps: list[Sweep] = field(default_factory=list)  # tune folders that swept one value


def load_evaluation(path: Path, *, prefix: str = "", title: str | None = None) -> Evaluation:
    """An ``emgtf.evaluate`` JSON report and the error analysis of its sessions."""
    report = read_json(path)
    predictions, targets = report_pairs(report, source=str(path))
    try:
        analysis = analyze_edits(predictions, targets)
    except EmgtfError as e:
        raise EmgtfError(f"{path}: {e}") from None
    return Evaluation(path, report, analysis, prefix, title or f"error analysis of {path}")


def read_inputs(paths: Sequence, *, warn=None) -> Inputs:
    """Reads every path: a run folder, a tune folder (its trials) or an evaluation JSON file.

    A single run with a test report gets that report's error analysis too. ``warn`` (one
    argument) hears the trials of a tune folder that are skipped (see ``load_runs``).
    """
    if not paths:
        raise EmgtfError("no run folder or evaluation report given")
    inputs = Inputs(paths=[Path(p) for p in paths])
    run_paths, eval_paths = [], []
    for path in inputs.paths:
        if path.is_file():
            eval_paths.append(path)
        elif path.is_dir():
            run_paths.append(path)
        else:
            raise EmgtfError(f"{path}: no such run folder or evaluation report")
    if run_paths:
        inputs.runs = load_runs(run_paths, warn=warn)
        label_runs(inputs.runs)
        inputs.sweeps = load_sweeps(run_paths)
    many = len(eval_paths) > 1
    for i, path in enumerate(eval_paths):
        inputs.evaluations.append(load_evaluation(path, prefix=f"eval{i + 1}_" if many else ""))
    if len(inputs.runs) == 1 and not eval_paths and inputs.runs[0].test_report_path is not None:
        run = inputs.runs[0]
        title = f"error analysis of the test set ({run.test_report_path.name})"
        inputs.evaluations.append(load_evaluation(run.test_report_path, prefix="test_", title=title))
    return inputs


def evaluation_report_dir(path: Path) -> Path:
    """``<report stem>-report`` beside an evaluation JSON: where its report goes by default."""
    path = Path(path)
    return path.with_name(f"{path.stem}-report")


def default_out(inputs: Inputs) -> Path:
    """``<run or tune folder>/report`` for one folder, ``<report stem>-report`` beside one JSON,
    else a fresh ``reports/<date>-<time>-compare``."""
    if len(inputs.paths) == 1:
        path = inputs.paths[0]
        return path / "report" if path.is_dir() else evaluation_report_dir(path)
    return fresh_path(Path("reports") / f"{datetime.now():%Y%m%d-%H%M%S}-compare")


def prepare_out(out: Path) -> Path:
    """Creates ``out``; refuses a file or a non-empty folder there."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EmgtfError(f"{out} is not an empty folder; choose another --out (a report never writes over one)")
    out.mkdir(parents=True, exist_ok=True)
    return out


# --- the parts of the page ---------------------------------------------------------------------


def _summary_rows(runs: Sequence[Run]) -> tuple[list[str], list[list]]:
    keys = sorted({k for r in runs for k in r.differences if k != "model.family"})
    columns = ["run", "folder", "family", "epochs", "best epoch", *(f"best val {r}" for r in RATES),
               "test CER", "test decoder", *keys]
    rows = []
    for run in runs:
        best = run.best or {}
        rows.append([
            run.label, str(run.path), run.family or "-", html.number(len(run.history), "d"),
            html.number(run.best_epoch, "d"), *(html.number(best.get(f"val/{r}")) for r in RATES),
            html.number(run.test_cer), run.test_decoder or "-",
            *(format_value(run.differences[k]) if k in run.differences else "-" for k in keys),
        ])
    return columns, rows


def write_summary_csv(path: Path, runs: Sequence[Run]) -> Path:
    """``summary.csv``: the summary table with exact numbers (empty cells for missing ones)."""
    columns, rows = _summary_rows(runs)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if isinstance(c, html.Cell) and c.value is None
                             else (c.value if isinstance(c, html.Cell) else c) for c in row])
    return path


def history_table(run: Run, number: int) -> html.Table:
    """The run's history.csv as a table, id ``history-<number>`` (1-based, in report order)."""
    rows = [[html.number(r.get(column), spec) for column, spec in HISTORY_COLUMNS] for r in run.history]
    return html.Table(f"history of {run.label} ({run.path})", [c for c, _ in HISTORY_COLUMNS], rows,
                      css_id=f"history-{number}")


def _image(out: Path, stem: str, caption: str) -> html.Image:
    return html.Image(out / f"{stem}.png", caption, out / f"{stem}.svg")


def _runs_section(runs: Sequence[Run], out: Path, written: list[Path]) -> html.Section:
    from emgtf.reporting.figures import best_cer_figure, curves_figure, save

    section = html.Section("runs" if len(runs) > 1 else f"run {runs[0].path}")
    columns, rows = _summary_rows(runs)
    section.blocks.append(html.Table("summary (best epoch = lowest val CER)", columns, rows, css_id="summary"))
    written.append(write_summary_csv(out / "summary.csv", runs))
    written += save(curves_figure({r.label: r.history for r in runs}), out / "curves")
    section.blocks.append(_image(out, "curves", "loss, val error rates and learning rate per epoch"))
    if len(runs) > 1:
        written += save(best_cer_figure([r.label for r in runs], [r.best_val_cer for r in runs],
                                        [r.test_cer for r in runs]), out / "best_cer")
        section.blocks.append(_image(out, "best_cer", "best val CER and test CER per run"))
    section.blocks += [history_table(r, i + 1) for i, r in enumerate(runs)]
    return section


def _evaluation_section(evaluation: Evaluation, out: Path, written: list[Path]) -> html.Section:
    from emgtf.reporting.error_figures import confusion_figure, key_rates_figure, substitutions_figure
    from emgtf.reporting.figures import save
    from emgtf.reporting.keyboard_groups import display

    a, p = evaluation.analysis, evaluation.prefix
    report = evaluation.report
    section = html.Section(evaluation.title)
    where = ", ".join(f"{k} {report[k]}" for k in ("checkpoint", "split") if report.get(k))
    if where:
        section.blocks.append(where)
    sessions = report.get("sessions") or []
    session_rows = [[str(s.get("session", i)), html.number(s.get("CER")), html.number(s.get("rendered_CER")),
                     html.number(s.get("target_chars"), "d"), html.number(len(s["prediction"]), "d")]
                    for i, s in enumerate(sessions)]
    section.blocks.append(html.Table("sessions", ["session", "CER", "rendered CER", "target keys",
                                                  "decoded keys"],
                                     session_rows, css_id=f"{p}sessions"))
    totals = a.totals()
    section.blocks.append(html.Table(
        "edit operations (reference naming)",
        ["substitutions", "insertions (typed key missed)", "deletions (decoded key not typed)", "errors",
         "target keys", "CER"],
        [[html.number(totals[k], "d") for k in ("substitutions", "insertions", "deletions", "errors",
                                                 "target_chars")] + [html.number(totals["CER"])]],
        css_id=f"{p}totals"))
    section.blocks.append(NAMING_NOTE)
    written += save(confusion_figure(a), out / f"{p}confusion")
    section.blocks.append(_image(out, f"{p}confusion", "substitutions: typed key (row) decoded as key (column)"))
    written += save(substitutions_figure(a, top=TOP_SUBSTITUTIONS), out / f"{p}substitutions")
    section.blocks.append(_image(out, f"{p}substitutions", f"the {TOP_SUBSTITUTIONS} most frequent substitutions"))
    section.blocks.append(html.Table(
        "most frequent substitutions", ["typed", "decoded", "count"],
        [[display(t), display(d), html.number(c, "d")] for t, d, c in a.top_substitutions(TOP_SUBSTITUTIONS)],
        css_id=f"{p}top-substitutions"))
    written += save(key_rates_figure(a), out / f"{p}key_rates")
    section.blocks.append(_image(out, f"{p}key_rates", "per-key insertion and deletion rates"))
    if evaluation.alignment is not None:
        written += save(evaluation.alignment.figure(), out / f"{p}alignment")
        section.blocks.append(_image(out, f"{p}alignment", evaluation.alignment.caption()))
    return section


def _sweep_section(sweep: Sweep, out: Path, written: list[Path]) -> html.Section:
    from emgtf.reporting.figures import save
    from emgtf.reporting.sweep import sweep_figure, sweep_rows

    stem = f"sweep_{sweep.name}"
    section = html.Section(f"sweep of {sweep.name} ({sweep.path})")
    written += save(sweep_figure(sweep), out / stem)
    section.blocks.append(_image(out, stem, f"val and test CER against {sweep.name}"))
    columns, rows = sweep_rows(sweep)
    section.blocks.append(html.Table(f"CER per trial, by {sweep.name}", columns, rows, css_id=stem))
    return section


def write_report(inputs: Inputs, out: Path) -> list[Path]:
    """Writes the report of ``inputs`` into the (new or empty) folder ``out``; returns the files,
    ``index.html`` last."""
    out = prepare_out(out)
    written: list[Path] = []
    sections = []
    sections += [_sweep_section(sweep, out, written) for sweep in inputs.sweeps]
    if inputs.runs:
        sections.append(_runs_section(inputs.runs, out, written))
    for evaluation in inputs.evaluations:
        sections.append(_evaluation_section(evaluation, out, written))
    title = "emgtf report: " + ", ".join(str(p) for p in inputs.paths)
    intro = f"generated {datetime.now():%Y-%m-%d %H:%M} by python -m emgtf.report"
    written.append(html.write(out / "index.html", title, sections, intro))
    return written
