"""The tables of a search: one row per trial (``TrialRow``), written as ``best_trials.json``
and ``best_trials.csv`` and printed as a fixed-width table at the end of the search."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emgtf.files import atomic_write_text
from emgtf.tuning.space import summarize_values

REPORTED = ("val_CER", "val_IER", "val_DER", "val_SER", "val_rendered_CER", "val_loss", "loss")
# Beside the rates: what each trial cost (trainable parameters, seconds of training) and, with
# tuner.test=true, the test CER of its best checkpoint (reported, never the objective).
COSTS = ("params", "train_s", "test_CER")


@dataclass
class TrialRow:
    """One trial as the search reports it. ``val_cer`` in percent (None unless completed)."""

    trial_id: str
    status: str
    val_cer: float | None
    metrics: dict
    best_epoch: int | None
    epochs: int | None
    hyperparameters: dict
    run_dir: Path
    worker: str | None = None
    message: str | None = None


def last_line(message: str | None) -> str:
    """The error of a failed trial: the last line of KerasTuner's stored traceback, class removed."""
    lines = [ln.strip() for ln in (message or "").strip().splitlines() if ln.strip()]
    if not lines:
        return "no message"
    last = lines[-1]
    head, sep, rest = last.partition(": ")
    if sep and "Error" in head and " " not in head:
        return rest
    return last


def write_tables(run_dir: Path, names: Sequence[str], ranked: list[TrialRow]) -> None:
    """``best_trials.json`` and ``best_trials.csv`` in ``run_dir``: every trial, ``ranked`` best
    first; the CSV has a column per hyperparameter (``names`` first: the search space's)."""
    names = list(names)
    names += sorted({k for r in ranked for k in r.hyperparameters} - set(names))
    records = []
    for rank, r in enumerate(ranked, 1):
        records.append({
            "rank": rank if r.val_cer is not None else None,
            "trial": r.trial_id,
            "status": r.status,
            **{name: r.metrics.get(name) for name in (*REPORTED, *COSTS)},
            "best_epoch": r.best_epoch,
            "epochs": r.epochs,
            "worker": r.worker,
            "run_dir": str(r.run_dir),
            "hyperparameters": r.hyperparameters,
            "message": r.message,
        })
    atomic_write_text(run_dir / "best_trials.json", json.dumps(records, indent=2) + "\n")
    out = io.StringIO()
    columns = [c for c in records[0] if c != "hyperparameters"] + names if records else names
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for record in records:
        flat = {k: v for k, v in record.items() if k != "hyperparameters"}
        flat.update({name: record["hyperparameters"].get(name) for name in names})
        writer.writerow(flat)
    atomic_write_text(run_dir / "best_trials.csv", out.getvalue())


def trials_table(rows: Sequence[TrialRow], top: int = 10) -> str:
    """The best ``top`` trials (and a count of the others) as a fixed-width table."""

    def number(value, fmt: str, width: int) -> str:
        return f"{value:{width}{fmt}}" if value is not None else f"{'-':>{width}}"

    shown = list(rows[:top])
    header = (f"{'rank':>4}  {'trial':>6}  {'val CER':>7}  {'test CER':>8}  {'epoch':>5}  {'epochs':>6}  "
              f"{'params':>10}  {'train s':>7}  {'status':<9}  hyperparameters")
    lines = ["", header, "-" * len(header)]
    for rank, r in enumerate(shown, 1):
        hp = summarize_values({k: v for k, v in r.hyperparameters.items() if not k.startswith("tuner/")})
        params = r.metrics.get("params")
        lines.append(
            f"{rank if r.val_cer is not None else '-':>4}  {r.trial_id:>6}  {number(r.val_cer, '.2f', 7)}  "
            f"{number(r.metrics.get('test_CER'), '.2f', 8)}  {r.best_epoch or '-':>5}  {r.epochs or '-':>6}  "
            f"{number(None if params is None else int(params), ',', 10)}  {number(r.metrics.get('train_s'), '.0f', 7)}  "
            f"{r.status:<9}  {hp}" + (f"  [{r.message}]" if r.message else "")
        )
    if len(rows) > top:
        lines.append(f"... and {len(rows) - top} more (best_trials.csv)")
    return "\n".join(lines)
