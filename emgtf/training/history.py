"""The summary table of a run's per-epoch history, printed at the end of a run (``history.csv``
itself: ``emgtf.run_folder``)."""

from __future__ import annotations

import math

# history.csv itself is read and written by emgtf.run_folder (below training and reporting); the
# names stay importable from here for code written against them.
from emgtf.run_folder import COLUMNS, RATES, read_history, write_history  # noqa: F401


def _fmt(value, spec=".2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def summary_table(result, max_rows: int = 24) -> str:
    """The per-epoch table printed at the end of a run (long runs: first, best and last epochs)."""
    rows = result.history
    if len(rows) > max_rows:
        keep = {r["epoch"] for r in rows[:4]} | {r["epoch"] for r in rows[-(max_rows - 6):]}
        if result.best_epoch:
            keep.add(result.best_epoch)
        rows = [r for r in rows if r["epoch"] in keep]
    header = (
        f"{'epoch':>5}  {'lr':>9}  {'loss':>8}  {'val loss':>8}  {'val CER':>7}  "
        f"{'IER':>6}  {'DER':>6}  {'SER':>6}  {'s':>6}"
    )
    lines = ["", header, "-" * len(header)]
    previous = 0
    for r in rows:
        if r["epoch"] != previous + 1:
            lines.append(f"{'...':>5}")
        previous = r["epoch"]
        mark = "  *" if r["epoch"] == result.best_epoch else ""
        lines.append(
            f"{r['epoch']:>5}  {_fmt(r.get('lr'), '.3e'):>9}  {_fmt(r.get('train/loss'), '.4f'):>8}  "
            f"{_fmt(r.get('val/loss'), '.4f'):>8}  {_fmt(r.get('val/CER')):>7}  {_fmt(r.get('val/IER')):>6}  "
            f"{_fmt(r.get('val/DER')):>6}  {_fmt(r.get('val/SER')):>6}  {_fmt(r.get('seconds'), '.1f'):>6}{mark}"
        )
    if result.best_epoch:
        lines.append(
            f"best: epoch {result.best_epoch}, val CER {result.best_val_cer:.2f} % -> {result.best_checkpoint}"
        )
    if result.skipped_windows:
        lines.append(
            f"{result.skipped_windows} training windows left out of the loss (labels longer than the emission)"
        )
    return "\n".join(lines)
