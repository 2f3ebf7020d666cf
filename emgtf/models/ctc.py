"""The CTC contract between a model and its targets: the loss for Keras ``fit`` with variable
emission lengths packed into ``y_true``, and the packing itself (training and validation both use it).

Keras losses see only ``(y_true, y_pred)``, so the emission length of each example travels as
column 0 of ``y_true``, in front of its labels (see ``pack_targets``). The normalisation is
PyTorch's ``CTCLoss(reduction="mean")``, which Meta's learning rate was tuned with: each example's
negative log-likelihood divided by its label length, averaged over the batch.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from emgtf.charset import PAD, charset


@keras.saving.register_keras_serializable(package="emgtf")
class CTCLoss(keras.losses.Loss):
    """Connectionist temporal classification loss on per-frame log-probabilities.

    ``y_pred``: log-probabilities ``(batch, frames, 99)``. ``y_true``: integers ``(batch, 1 + L)``,
    column 0 the emission length of the example (frames of ``y_pred`` that belong to it), columns
    1.. its labels padded with -1. Per example: negative log-likelihood / max(label length, 1).

    An example that cannot be scored contributes 0 instead of poisoning the batch: emission length
    <= 0, or labels that do not fit (label length + adjacent repeats > emission length), or a
    non-finite value. Infeasible examples are replaced by an empty target before the CTC call, so
    neither the loss nor its gradient sees them. The training loop warns about such windows.
    """

    def __init__(
        self,
        blank: int | None = None,
        name: str = "ctc_loss",
        reduction: str = "sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.blank = charset().blank if blank is None else int(blank)

    def call(self, y_true, y_pred):
        # Keras casts y_true to the loss dtype; lengths and labels are small exact integers.
        y_true = ops.cast(ops.round(y_true), "int32")
        y_pred = ops.cast(y_pred, "float32")
        frames = ops.shape(y_pred)[1]
        emission = ops.clip(y_true[:, 0], 0, frames)
        labels = y_true[:, 1:]
        valid = ops.greater_equal(labels, 0)
        label_length = ops.sum(ops.cast(valid, "int32"), axis=1)
        repeats = ops.sum(
            ops.cast(
                ops.logical_and(
                    ops.logical_and(valid[:, 1:], valid[:, :-1]),
                    ops.equal(labels[:, 1:], labels[:, :-1]),
                ),
                "int32",
            ),
            axis=1,
        )
        feasible = ops.logical_and(
            ops.greater(emission, 0), ops.less_equal(label_length + repeats, emission)
        )
        # Stand-in for unscorable examples: no labels over >= 1 frame is always finite.
        safe_labels = ops.where(valid, labels, 0)
        safe_label_length = ops.where(feasible, label_length, 0)
        safe_emission = ops.where(feasible, emission, ops.minimum(ops.maximum(emission, 1), frames))
        nll = ctc_nll(safe_labels, y_pred, safe_label_length, safe_emission, self.blank)
        per_example = nll / ops.cast(ops.maximum(label_length, 1), nll.dtype)
        keep = ops.logical_and(feasible, ops.isfinite(per_example))
        return ops.where(keep, per_example, ops.zeros_like(per_example))

    def get_config(self):
        return {**super().get_config(), "blank": self.blank}


def ctc_nll(labels, log_probs, label_length, emission_length, blank: int):
    """Per-example CTC negative log-likelihood, ``keras.ops.ctc_loss``'s contract (labels
    ``(batch, L)`` valid up to ``label_length``; every example feasible).

    Under TensorFlow outside XLA, with the blank the last class (emgtf's charset), TensorFlow's
    C++ CTC kernel computes it instead: ``keras.ops.ctc_loss`` there is TensorFlow's dense-label
    CTC, a graph-level scan over the frames that took 123 ms against the kernel's 11 ms for a
    training batch (16 windows of 156 frames, forward and gradient, 2-core CPU): 40 % of the
    default run's step. Both give the same values (tests/training/test_losses.py). The kernel
    runs on the CPU only: on a GPU TensorFlow places it there (soft placement; not measured).
    """
    if (
        keras.backend.backend() == "tensorflow"
        and log_probs.shape[-1] is not None
        and blank == log_probs.shape[-1] - 1
        and log_probs.shape[1] != 0  # the kernel refuses zero frames
        and not _in_xla_compilation()
    ):
        return _tensorflow_ctc_kernel(labels, log_probs, label_length, emission_length)
    return ops.ctc_loss(labels, log_probs, label_length, emission_length, mask_index=blank)


def _in_xla_compilation() -> bool:
    """Whether TensorFlow is tracing for XLA (``jit_compile``), which has no CTC kernel."""
    import tensorflow as tf

    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # the helper moved: the dense CTC is right everywhere, only slower
        return True
    if tf.executing_eagerly():
        return False
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _tensorflow_ctc_kernel(labels, log_probs, label_length, emission_length):
    import tensorflow as tf

    # The kernel refuses an empty label sequence: such an example gets a one-label stand-in
    # (in a column added for it) and its likelihood is the all-blank path's, computed here.
    labels = tf.pad(tf.cast(labels, tf.int32), [[0, 0], [0, 1]])
    label_length = tf.cast(label_length, tf.int32)
    emission_length = tf.cast(emission_length, tf.int32)
    empty = label_length <= 0
    stand_in_length = tf.where(empty, 1, label_length)
    stand_in_emission = tf.where(empty, tf.maximum(emission_length, 1), emission_length)
    inside = tf.where(tf.sequence_mask(stand_in_length, tf.shape(labels)[1]))
    values = tf.where(tf.gather(empty, inside[:, 0]), 0, tf.gather_nd(labels, inside))
    sparse = tf.SparseTensor(inside, values, tf.shape(labels, out_type=tf.int64))
    # The kernel takes logits and normalises them, as the dense CTC does.
    nll = tf.compat.v1.nn.ctc_loss(
        sparse, log_probs, stand_in_emission, preprocess_collapse_repeated=False,
        # CTCLoss passes feasible examples only; an infeasible one would be inf, not an error.
        ctc_merge_repeated=True, ignore_longer_outputs_than_inputs=True, time_major=False,
    )
    blank_log_probs = tf.nn.log_softmax(log_probs)[:, :, -1]
    frames = tf.sequence_mask(emission_length, tf.shape(log_probs)[1])
    all_blank = -tf.reduce_sum(tf.where(frames, blank_log_probs, 0.0), axis=1)
    return tf.where(empty, all_blank, nll)


def pack_targets(emission_lengths, labels, label_lengths) -> np.ndarray:
    """``y_true`` for ``CTCLoss``: int32 ``(batch, 1 + L)``, lengths then labels padded -1.

    ``labels`` ``(batch, L)`` may be padded with anything beyond ``label_lengths``.
    """
    emission_lengths = np.asarray(emission_lengths, dtype=np.int64).reshape(-1)
    labels = np.asarray(labels)
    label_lengths = np.asarray(label_lengths, dtype=np.int64).reshape(-1)
    if labels.ndim != 2 or not len(emission_lengths) == len(labels) == len(label_lengths):
        raise ValueError(
            f"expected labels (batch, L) and one emission and label length per example, got "
            f"labels {labels.shape}, {len(emission_lengths)} emission and {len(label_lengths)} "
            "label lengths"
        )
    if np.any(label_lengths < 0) or np.any(label_lengths > labels.shape[1]):
        raise ValueError(f"label lengths must lie in 0..{labels.shape[1]}, got {label_lengths}")
    inside = np.arange(labels.shape[1])[None, :] < label_lengths[:, None]
    packed = np.where(inside, labels, PAD)
    return np.concatenate([emission_lengths[:, None], packed], axis=1).astype(np.int32)


def pack_targets_tensor(emission_lengths, labels, label_lengths):
    """``pack_targets`` in keras.ops, for use inside a data pipeline or a train step."""
    labels = ops.cast(labels, "int32")
    positions = ops.arange(ops.shape(labels)[1])[None, :]
    inside = ops.less(positions, ops.cast(label_lengths, "int32")[:, None])
    packed = ops.where(inside, labels, PAD)
    return ops.concatenate([ops.cast(emission_lengths, "int32")[:, None], packed], axis=1)


def ctc_feasible(labels, label_lengths, emission_lengths) -> np.ndarray:
    """Whether CTC can align each example: label length + adjacent repeats <= emission length.

    A repeated label needs a blank between its copies, hence one extra frame per repeat. Also
    False where the emission length is 0 or less. numpy in, bool ``(batch,)`` out.
    """
    labels = np.asarray(labels)
    if labels.ndim == 1:
        labels = labels[None]
    label_lengths = np.asarray(label_lengths).reshape(-1)
    emission_lengths = np.asarray(emission_lengths).reshape(-1)
    inside = np.arange(labels.shape[1])[None, :] < label_lengths[:, None]
    repeats = np.sum(inside[:, 1:] & (labels[:, 1:] == labels[:, :-1]), axis=1)
    return (emission_lengths > 0) & (label_lengths + repeats <= emission_lengths)
