"""Training targets: each window's emission length and labels packed as CTCLoss's ``y_true``."""

from __future__ import annotations

import threading
import warnings

import numpy as np

from emgtf.charset import PAD


class InfeasibleWindowWarning(UserWarning):
    """A training window with more labels than the model emits frames for it."""


class TargetPacker:
    """The numpy step of the training pipeline: ``y_true`` (B, 1 + L) for CTCLoss.

    Column 0 is each window's emission length under the model being trained; a window CTC cannot
    align (more labels + repeats than frames) gets 0 there, which CTCLoss skips. The first such
    window is reported by session and start sample; later ones are only counted.
    """

    def __init__(self, model, label_bucket: int = 16):
        self.model = model
        self.label_bucket = label_bucket
        self.skipped = 0
        self.muted = False
        self._warned = False
        self._lock = threading.Lock()

    def __call__(self, emg_lengths, labels, label_lengths, sessions, starts):
        from emgtf.models.ctc import ctc_feasible, pack_targets
        from emgtf.models import emission_lengths

        emitted = np.asarray(emission_lengths(self.model, emg_lengths), np.int64)
        feasible = ctc_feasible(labels, label_lengths, emitted)
        if not feasible.all() and not self.muted:
            with self._lock:
                self.skipped += int((~feasible).sum())
                if not self._warned:
                    self._warned = True
                    b = int(np.flatnonzero(~feasible)[0])
                    session = sessions[b].decode() if isinstance(sessions[b], bytes) else str(sessions[b])
                    warnings.warn(
                        f"training window of session {session} starting at sample {int(starts[b])} has "
                        f"{int(label_lengths[b])} labels but the model emits only {int(emitted[b])} "
                        "frames for it: CTC cannot align it, so it is left out of the loss "
                        "(reported once; the count follows at the end)",
                        InfeasibleWindowWarning,
                        stacklevel=1,
                    )
        # Label columns rounded up to a multiple of label_bucket: a few distinct batch shapes
        # instead of one per longest label, so XLA (jit_compile) compiles a few programs, not dozens.
        width = -(-labels.shape[1] // self.label_bucket) * self.label_bucket
        labels = np.pad(labels, ((0, 0), (0, width - labels.shape[1])), constant_values=PAD)
        return pack_targets(np.where(feasible, emitted, 0), labels, label_lengths)


def training_pairs(dataset, packer: TargetPacker):
    """Maps dict batches to ``(emg, y_true)`` for ``model.fit``."""
    import tensorflow as tf

    def to_pair(batch):
        y = tf.numpy_function(
            packer,
            [batch["emg_lengths"], batch["labels"], batch["label_lengths"], batch["session"], batch["start"]],
            tf.int32,
            stateful=False,
        )
        y.set_shape((None, None))
        return batch["emg"], y

    return dataset.map(to_pair, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
