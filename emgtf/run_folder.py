"""The run folder: the one place that knows the names of the files a run writes.

``python -m emgtf.fit`` (and each trial of ``python -m emgtf.tune``) writes, in ``run_dir``:

- ``config.yaml``: the resolved config, written before the first epoch;
- ``last.keras`` and ``last.json``: the latest checkpoint and its training state (epoch, best so
  far, seed-generator states), what ``resume=true`` continues from;
- ``best.keras``: the checkpoint of the best validation CER;
- ``history.csv``: one row per epoch (``epoch``, ``train/loss``, ``val/loss``, ``val/CER`` ...,
  ``lr``, ``seconds``);
- ``tensorboard/``, ``wandb.json``: the loggers' files; ``.emgtf.lock``: the lock of a live run.

Resume, evaluate, export, report and tune all read a run through ``RunFolder``; this module
imports nothing heavier than the csv module, so a report reads histories without TensorFlow.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from emgtf.errors import EmgtfError
from emgtf.files import atomic_write
from emgtf.metrics import RATES as METRIC_RATES

CONFIG_FILE = "config.yaml"
BEST_FILE = "best.keras"
LAST_FILE = "last.keras"
STATUS_FILE = "last.json"
HISTORY_FILE = "history.csv"
LOCK_FILE = ".emgtf.lock"
TENSORBOARD_DIR = "tensorboard"
WANDB_FILE = "wandb.json"
# What a run writes before its first checkpoint; a folder holding only these is a dead run's.
BEFORE_FIRST_CHECKPOINT = frozenset({CONFIG_FILE, LOCK_FILE, TENSORBOARD_DIR, WANDB_FILE})

# Keras logs key -> history.csv column. The slash names are the metric names of the
# W&B dashboards; Keras needs val_* names (KerasTuner objectives, EarlyStopping monitors).
RATES = METRIC_RATES  # every rate the validation reports, rendered-text CER included
COLUMNS = {
    "loss": "train/loss",
    "val_loss": "val/loss",
    **{f"val_{r}": f"val/{r}" for r in RATES},
    "learning_rate": "lr",
}


@dataclass(frozen=True)
class RunFolder:
    """The files of one run folder (see the module docstring); ``RunFolder(path).best`` etc."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def best(self) -> Path:
        return self.path / BEST_FILE

    @property
    def last(self) -> Path:
        return self.path / LAST_FILE

    @property
    def status(self) -> Path:
        return self.path / STATUS_FILE

    @property
    def history(self) -> Path:
        return self.path / HISTORY_FILE

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD_DIR

    @property
    def wandb(self) -> Path:
        return self.path / WANDB_FILE

    def can_resume(self) -> bool:
        """Whether the run left a checkpoint to continue from."""
        return self.last.is_file()

    def _contents(self) -> set[str]:
        """The names in the folder, its lock left out."""
        return {p.name for p in self.path.iterdir()} - {LOCK_FILE} if self.path.is_dir() else set()

    def has_contents(self) -> bool:
        """Whether anything but the lock is in the folder."""
        return bool(self._contents())

    def is_dead_run(self) -> bool:
        """Whether the folder holds only what a run writes before its first checkpoint (a run
        killed in epoch 1): nothing to continue, nothing worth keeping."""
        contents = self._contents()
        return CONFIG_FILE in contents and contents <= BEFORE_FIRST_CHECKPOINT

    def read_history(self, *, missing_ok: bool = False) -> list[dict]:
        return read_history(self.history, missing_ok=missing_ok)

    def write_history(self, rows: list[dict]) -> None:
        write_history(self.history, rows)


def write_history(path: Path, rows: list[dict]) -> None:
    """``rows`` as ``history.csv``, written atomically; the columns in order of first appearance."""
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
