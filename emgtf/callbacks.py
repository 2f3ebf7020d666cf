"""Keras callbacks of the training loop: validation CER, divergence guard, checkpoints, history.

They share one :class:`RunState` so that, e.g., no checkpoint is written for an epoch whose loss
went NaN. They must come first in the callback list (before TensorBoard, KerasTuner's callbacks
and the progress bar, which Keras appends last), because Keras hands the same ``logs`` dict to
each callback in order and the validation callback adds ``val_loss`` and ``val_CER`` to it.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from emgtf.charset import charset
from emgtf.errors import EmgtfError

# Keras logs key -> history.csv column. The slash names are the metric names of the issue tracker
# and of wandb; Keras needs val_* names (KerasTuner objectives, EarlyStopping monitors).
RATES = ("CER", "IER", "DER", "SER")
COLUMNS = {
    "loss": "train/loss",
    "val_loss": "val/loss",
    **{f"val_{r}": f"val/{r}" for r in RATES},
    "learning_rate": "lr",
}


@dataclass
class RunState:
    """What the callbacks of one run know about it."""

    run_dir: Path
    history: list[dict] = field(default_factory=list)  # one row per completed epoch
    best_val_cer: float = math.inf
    best_val_loss: float = math.inf  # of the best epoch, to break CER ties
    best_epoch: int | None = None  # 1-based
    diverged: tuple[int, int] | None = None  # (epoch, step), both 1-based
    epoch_started: float = 0.0
    samples: list = field(default_factory=list)  # (prediction, target) of the first val windows

    @property
    def best_checkpoint(self) -> Path:
        return self.run_dir / "best.keras"

    @property
    def last_checkpoint(self) -> Path:
        return self.run_dir / "last.keras"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def forward(model: keras.Model, emg) -> np.ndarray:
    """Log-probabilities (batch, frames, 99) float32 of a batch, through the compiled predict step."""
    return np.asarray(model.predict_on_batch(emg), dtype=np.float32)


def validate(model, dataset, loss, decoder=None, *, samples: int = 0) -> dict:
    """Loss and error rates of ``model`` on every window of ``dataset`` (dict batches).

    The loss is averaged over windows like the training loss; the rates are summed over the split
    (:class:`emgtf.metrics.ErrorCounter`). Greedy decoding unless a ``decoder`` is given.
    ``samples`` > 0 adds ``"samples"``: (prediction, target) of the first that many windows.
    """
    from emgtf.decode import ctc_greedy
    from emgtf.losses import pack_targets
    from emgtf.metrics import ErrorCounter
    from emgtf.models import emission_lengths

    cs = charset()
    counter = ErrorCounter()
    total_loss, windows = 0.0, 0
    kept = []
    for batch in dataset:
        log_probs = forward(model, batch["emg"])
        emitted = np.minimum(
            np.asarray(emission_lengths(model, batch["emg_lengths"].numpy()), np.int64), log_probs.shape[1]
        )
        labels, label_lengths = batch["labels"].numpy(), batch["label_lengths"].numpy()
        # CTCLoss scores an infeasible window 0, as in training.
        y = pack_targets(emitted, labels, label_lengths)
        per_window = keras.ops.convert_to_numpy(loss.call(y, log_probs))
        total_loss += float(np.sum(per_window))
        windows += len(per_window)
        texts = decoder.decode_batch(log_probs, emitted) if decoder else ctc_greedy(log_probs, emitted)
        for text, row, n in zip(texts, labels, label_lengths):
            target = cs.labels_to_str(row[:n])
            counter.update(text, target)
            if len(kept) < samples:
                kept.append((text, target))
    if windows == 0:
        raise EmgtfError("the validation split gave no windows")
    result = {"loss": total_loss / windows, **counter.result()}
    if samples:
        result["samples"] = kept
    return result


SAMPLE_DECODINGS = 8  # validation windows whose decodings a run keeps (W&B shows them)


class Validation(keras.callbacks.Callback):
    """After every epoch: greedy CER etc. over the whole validation split into the logs
    (``val_loss``, ``val_CER``, ``val_IER``, ``val_DER``, ``val_SER``)."""

    def __init__(self, dataset, loss, state: RunState):
        super().__init__()
        self.dataset, self.loss, self.state = dataset, loss, state

    def on_epoch_end(self, epoch, logs=None):
        if self.state.diverged or logs is None:
            return
        result = validate(self.model, self.dataset, self.loss, samples=SAMPLE_DECODINGS)
        self.state.samples = result["samples"]  # for the W&B table of sample decodings
        logs["val_loss"] = result["loss"]
        for rate in RATES:
            logs[f"val_{rate}"] = result[rate]


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss and remembers the epoch and step.

    Unlike TerminateOnNaN it tells the loop where it happened, and the checkpoint callback then
    keeps the previous epoch's checkpoint as the last good one.
    """

    def __init__(self, state: RunState):
        super().__init__()
        self.state = state
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if (loss is not None and not math.isfinite(float(loss))) or not self._output_layer_finite():
            self.state.diverged = (self.epoch + 1, batch + 1)
            self.model.stop_training = True

    def _output_layer_finite(self) -> bool:
        # CTCLoss scores a non-finite example 0, so after a NaN gradient the reported loss can stay
        # finite while the weights are NaN. A NaN gradient reaches every layer in the same step;
        # the last (output) variables are the cheapest to check.
        for variable in self.model.trainable_variables[-2:]:
            if not np.isfinite(keras.ops.convert_to_numpy(keras.ops.sum(variable))):
                return False
        return True


class LearningRateLog(keras.callbacks.Callback):
    """Puts the learning rate of the epoch's first step into the logs (``learning_rate``)."""

    def __init__(self, state: RunState):
        super().__init__()
        self.state = state
        self.rate = None

    def on_epoch_begin(self, epoch, logs=None):
        self.rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.state.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.rate is not None:
            logs["learning_rate"] = self.rate


class History(keras.callbacks.Callback):
    """Appends each epoch's row to ``history.csv`` in the run folder (rewritten whole, atomically)."""

    def __init__(self, state: RunState):
        super().__init__()
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        if self.state.diverged:
            return
        logs = dict(logs or {})
        row = {"epoch": epoch + 1}
        for key, column in COLUMNS.items():
            if key in logs:
                row[column] = float(logs[key])
        for key, value in logs.items():  # whatever else callbacks logged, under its Keras name
            if key not in COLUMNS and np.ndim(value) == 0:
                row[key] = float(value)
        row["seconds"] = round(time.perf_counter() - self.state.epoch_started, 2)
        self.state.history.append(row)
        write_history(self.state.run_dir / "history.csv", self.state.history)


def write_history(path: Path, rows: list[dict]) -> None:
    columns = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = []
        for raw in csv.DictReader(f):
            row = {}
            for key, value in raw.items():
                if value in (None, ""):
                    continue
                row[key] = int(value) if key == "epoch" else float(value)
            rows.append(row)
    return rows


class Checkpoints(keras.callbacks.Callback):
    """Saves ``last.keras`` (model and optimizer state) every epoch, ``best.keras`` when the
    validation CER improves, and ``last.json`` (epoch, best CER) beside them."""

    def __init__(self, state: RunState, extra_state: dict | None = None):
        super().__init__()
        self.state = state
        self.extra_state = dict(extra_state or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.state.diverged:
            return
        logs = logs or {}
        last = self.state.last_checkpoint
        # Write then rename: a run killed while saving keeps its previous checkpoint intact.
        tmp = last.with_name(".last.tmp.keras")
        self.model.save(tmp)
        os.replace(tmp, last)
        cer, loss = logs.get("val_CER"), logs.get("val_loss")
        # Ties on CER (100 % while a CTC model still emits only blanks) go to the lower val loss.
        improved = cer is not None and (
            float(cer) < self.state.best_val_cer
            or (float(cer) == self.state.best_val_cer and loss is not None and float(loss) < self.state.best_val_loss)
        )
        if improved:
            self.state.best_val_cer = float(cer)
            self.state.best_val_loss = float(loss) if loss is not None else math.inf
            self.state.best_epoch = epoch + 1
            tmp = last.with_name(".best.tmp.keras")
            shutil.copyfile(last, tmp)
            os.replace(tmp, self.state.best_checkpoint)
        status = {
            "epoch": epoch + 1,
            "best_epoch": self.state.best_epoch,
            "best_val_CER": None if math.isinf(self.state.best_val_cer) else self.state.best_val_cer,
            **self.extra_state,
            # .keras files leave out the states of the layers' random generators (SpecAugment,
            # dropout); a resumed run needs them to draw what an uninterrupted run would.
            "seed_generators": [
                keras.ops.convert_to_numpy(v).tolist() for v in seed_generator_states(self.model)
            ],
        }
        _atomic_write_text(last.with_name("last.json"), json.dumps(status, indent=2) + "\n")


def seed_generator_states(model) -> list:
    """The state variables of the model's random generators, in a stable (build) order."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]
