"""Keras callbacks of the training loop: validation CER, divergence guard, checkpoints, history.

They share one ``RunState`` so that, e.g., no checkpoint is written for an epoch whose loss
went NaN. They must come first in the callback list (before TensorBoard, KerasTuner's callbacks
and the progress bar, which Keras appends last), because Keras hands the same ``logs`` dict to
each callback in order and the validation callback adds ``val_loss`` and ``val_CER`` to it.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from emgtf import interrupts
from emgtf.files import atomic_copy, atomic_write, write_json
from emgtf.inference.evaluation import validate
from emgtf.run_folder import COLUMNS, RATES, RunFolder

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
    val_pairs: list = field(default_factory=list)  # (prediction, target) of every val window

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    @property
    def best_checkpoint(self) -> Path:
        return self.folder.best

    @property
    def last_checkpoint(self) -> Path:
        return self.folder.last


SAMPLE_DECODINGS = 8  # validation windows whose decodings a run keeps (W&B shows them)


class Validation(keras.callbacks.Callback):
    """After every epoch: greedy CER etc. over the whole validation split into the logs
    (``val_loss``, ``val_CER``, ``val_IER``, ``val_DER``, ``val_SER``, ``val_rendered_CER``)."""

    def __init__(self, dataset, loss, state: RunState, forward=None):
        super().__init__()
        self.dataset, self.loss, self.state = dataset, loss, state
        self.forward = forward  # emg -> log-probs; None: the usual one (see Distribution.forward)

    def on_epoch_end(self, epoch, logs=None):
        if self.state.diverged or logs is None:
            return
        source = f"the model of epoch {epoch + 1} (run folder {self.state.run_dir})"
        # Every window's decoding: the TensorBoard confusion image shows the whole split.
        result = validate(self.model, self.dataset, self.loss, samples=sys.maxsize, source=source,
                          forward_fn=self.forward)
        self.state.val_pairs = result["samples"]
        self.state.samples = result["samples"][:SAMPLE_DECODINGS]  # for the W&B table of sample decodings
        logs["val_loss"] = result["loss"]
        for rate in RATES:
            logs[f"val_{rate}"] = result[rate]


class StopOnInterrupt(keras.callbacks.Callback):
    """Raises ``KeyboardInterrupt`` at the first batch boundary after Ctrl-C (see
    ``emgtf.interrupts``), outside any graph tracing. (Validation checks between its own
    batches: it runs its own loop, so Keras's test and predict hooks never fire in a fit.)"""

    def on_train_batch_end(self, batch, logs=None):
        interrupts.check()

    def on_epoch_end(self, epoch, logs=None):
        interrupts.check()


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
        self.state.folder.write_history(self.state.history)


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
        # Write then rename: a run killed while saving, or whose disk fills, keeps its previous
        # checkpoint intact (atomic_write turns the OSError into one line naming the file).
        atomic_write(last, self.model.save)
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
            atomic_copy(last, self.state.best_checkpoint)
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
        write_json(self.state.folder.status, status)


def seed_generator_states(model) -> list:
    """The state variables of the model's random generators, in a stable (build) order."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]
