"""A run's per-epoch history: ``history.csv`` and the summary table printed at the end of a run."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from emgtf.errors import EmgtfError
from emgtf.files import atomic_write

# Keras logs key -> history.csv column. The slash names are the metric names of the
# W&B dashboards; Keras needs val_* names (KerasTuner objectives, EarlyStopping monitors).
RATES = ("CER", "IER", "DER", "SER", "rendered_CER")  # emgtf.metrics.RATES
COLUMNS = {
    "loss": "train/loss",
    "val_loss": "val/loss",
    **{f"val_{r}": f"val/{r}" for r in RATES},
    "learning_rate": "lr",
}


def write_history(path: Path, rows: list[dict]) -> None:
    columns = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


def read_history(path: Path, *, missing_ok: bool = False) -> list[dict]:
    """Rows of a ``history.csv``: ``epoch`` as int, every other non-empty cell as float.

    Raises EmgtfError (naming the file and line) for a missing file (``[]`` with ``missing_ok``),
    a missing ``epoch`` column or a cell that is not a number.
    """
    path = Path(path)
    if missing_ok and not path.exists():
        return []
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "epoch" not in reader.fieldnames:
                raise EmgtfError(f"{path}: no 'epoch' column (not an emgtf history.csv)")
            rows = []
            for raw in reader:
                row = {}
                for key, value in raw.items():
                    if key is None or value in (None, ""):
                        continue  # a short row, or a column an earlier epoch did not log
                    try:
                        row[key] = int(value) if key == "epoch" else float(value)
                    except ValueError:
                        raise EmgtfError(
                            f"{path}, line {reader.line_num}: {key} is {value!r}, not a number"
                        ) from None
                if "epoch" in row:
                    rows.append(row)
    except FileNotFoundError:
        raise EmgtfError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise EmgtfError(f"{path}: cannot read it ({e})") from None
    return rows


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
        f"{'IER':>6}  {'DER':>6}  {'SER':>6}  {'rCER':>6}  {'s':>6}"
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
            f"{_fmt(r.get('val/DER')):>6}  {_fmt(r.get('val/SER')):>6}  "
            f"{_fmt(r.get('val/rendered_CER')):>6}  {_fmt(r.get('seconds'), '.1f'):>6}{mark}"
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
