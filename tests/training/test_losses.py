"""CTCLoss against hand-worked values and an independent numpy forward algorithm."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from emgtf.models.ctc import CTCLoss, ctc_feasible, ctc_nll, pack_targets, pack_targets_tensor

BLANK = 98


def log_probs(batch, frames, seed=0):
    logits = np.random.default_rng(seed).normal(0.0, 2.0, (batch, frames, 99))
    return (logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype("float32")


def reference_nll(lp, labels):
    """-log P(labels | lp) by the CTC forward recursion over blank-interleaved labels (numpy)."""
    ext = [BLANK]
    for label in labels:
        ext += [int(label), BLANK]
    alpha = np.full(len(ext), -np.inf)
    alpha[0] = lp[0, BLANK]
    if len(ext) > 1:
        alpha[1] = lp[0, ext[1]]
    for t in range(1, len(lp)):
        prev = alpha.copy()
        for s in range(len(ext)):
            a = prev[s]
            if s >= 1:
                a = np.logaddexp(a, prev[s - 1])
            if s >= 2 and ext[s] != BLANK and ext[s] != ext[s - 2]:
                a = np.logaddexp(a, prev[s - 2])
            alpha[s] = a + lp[t, ext[s]]
    end = alpha[-1] if len(ext) == 1 else np.logaddexp(alpha[-1], alpha[-2])
    return -end


def per_example(y_true, y_pred):
    return ops.convert_to_numpy(CTCLoss(reduction=None)(y_true, y_pred))


def test_hand_checked_two_frames_one_label():
    # Label "f" (5) over 2 frames: paths f f, f -, - f.
    p = np.full((1, 2, 99), 1e-12)
    p[0, :, 5] = [0.6, 0.3]
    p[0, :, BLANK] = [0.3, 0.5]
    p[0, :, 0] = [0.1, 0.2]
    y = pack_targets([2], [[5]], [1])
    expected = -np.log(0.6 * 0.3 + 0.6 * 0.5 + 0.3 * 0.3)  # = 0.5621...
    assert float(CTCLoss()(y, np.log(p).astype("float32"))) == pytest.approx(expected, rel=1e-5)


def test_hand_checked_repeat_needs_a_blank_between():
    # "ff" over 3 frames has exactly one alignment: f - f.
    p = np.full((1, 3, 99), 1e-12)
    p[0, :, 5] = [0.7, 0.2, 0.6]
    p[0, :, BLANK] = [0.3, 0.8, 0.4]
    y = pack_targets([3], [[5, 5]], [2])
    expected = -np.log(0.7 * 0.8 * 0.6) / 2  # divided by the label length
    assert float(CTCLoss()(y, np.log(p).astype("float32"))) == pytest.approx(expected, rel=1e-5)


def test_matches_numpy_forward_algorithm_with_padding_and_normalization():
    lp = log_probs(4, 12, seed=1)
    labels = [[3, 3, 7, 1], [0], [50, 51, 50], []]  # repeats, single, alternation, empty
    emission = [12, 9, 10, 5]
    width = 6
    padded = np.zeros((4, width), int)
    for i, seq in enumerate(labels):
        padded[i, : len(seq)] = seq
    y = pack_targets(emission, padded, [len(s) for s in labels])
    assert (y[:, 1:][y[:, 1:] >= 0].size) == sum(len(s) for s in labels)  # padding is -1
    expected = np.array(
        [reference_nll(lp[i, : emission[i]], s) / max(len(s), 1) for i, s in enumerate(labels)]
    )
    np.testing.assert_allclose(per_example(y, lp), expected, rtol=1e-4)
    # Default reduction: the batch mean of the per-example values.
    assert float(CTCLoss()(y, lp)) == pytest.approx(expected.mean(), rel=1e-4)
    # Frames beyond an example's emission length do not matter.
    noisy = lp.copy()
    noisy[1, 9:] = log_probs(1, 3, seed=9)[0]
    np.testing.assert_allclose(per_example(y, noisy), expected, rtol=1e-4)


def test_unscorable_examples_contribute_zero_and_no_nan_gradient():
    lp = log_probs(4, 6, seed=2)
    labels = np.array([[1, 1, 2, 2, 3], [4, 5, 0, 0, 0], [4, 5, 0, 0, 0], [6, 0, 0, 0, 0]])
    lengths = [5, 2, 2, 1]
    emission = [6, 0, -3, 6]  # 5 labels + 2 repeats > 6 frames; no frames; negative; fine
    y = pack_targets(emission, labels, lengths)
    assert ctc_feasible(labels, lengths, emission).tolist() == [False, False, False, True]
    values = per_example(y, lp)
    assert values[:3].tolist() == [0.0, 0.0, 0.0]
    assert values[3] == pytest.approx(reference_nll(lp[3], [6]), rel=1e-4)
    assert np.isinf(reference_nll(lp[0], labels[0]))  # the reference agrees: no alignment

    logits = tf.Variable(lp)
    with tf.GradientTape() as tape:
        loss = CTCLoss()(y, tf.nn.log_softmax(logits))
    grad = tape.gradient(loss, logits).numpy()
    assert np.isfinite(float(loss)) and np.all(np.isfinite(grad))
    assert np.all(grad[:3] == 0.0) and np.abs(grad[3]).max() > 0


def _random_batch(seed):
    """Labels with repeats, empty ones, emissions shorter than the frames: all feasible."""
    rng = np.random.default_rng(seed)
    batch, frames, width = 8, 40, 12
    lengths = np.array([0, 1, 12, 5, 0, 9, 3, 7])
    labels = rng.integers(0, 98, (batch, width))
    labels[2, 3:6] = labels[2, 2]  # a run of repeats
    emission = np.array([40, 3, 40, 20, 1, 33, 12, 40])
    assert ctc_feasible(labels, lengths, emission).all()
    logits = rng.normal(0.0, 2.0, (batch, frames, 99)).astype("float32")
    return logits, labels.astype("int32"), lengths.astype("int32"), emission.astype("int32")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's own kernel")
def test_tensorflow_kernel_equals_the_dense_ctc_in_value_and_gradient():
    logits, labels, lengths, emission = _random_batch(seed=4)
    results = []
    for ctc in (ctc_nll, lambda *a: ops.ctc_loss(*a[:4], mask_index=a[4])):
        variable = tf.Variable(logits)
        with tf.GradientTape() as tape:
            nll = ctc(labels, tf.nn.log_softmax(variable), lengths, emission, BLANK)
            total = tf.reduce_sum(nll)
        results.append((nll.numpy(), tape.gradient(total, variable).numpy()))
    (kernel, kernel_grad), (dense, dense_grad) = results
    graph = tf.function(ctc_nll).get_concrete_function(
        tf.constant(labels), tf.constant(logits), tf.constant(lengths), tf.constant(emission), BLANK).graph
    assert "CTCLoss" in {op.type for op in graph.get_operations()}  # the kernel, not the dense scan
    np.testing.assert_allclose(kernel, dense, rtol=1e-5)
    np.testing.assert_allclose(kernel_grad, dense_grad, rtol=1e-4, atol=1e-5)
    expected = [reference_nll(tf.nn.log_softmax(logits[i]).numpy()[: emission[i]], labels[i, : lengths[i]])
                for i in (0, 1, 2)]  # empty, one label over 3 frames, repeats
    np.testing.assert_allclose(kernel[:3], expected, rtol=1e-4)


@pytest.fixture
def without_op_determinism():
    """XLA refuses to run while TensorFlow's op determinism is on, which a training test in the
    same process may have left on."""
    from tensorflow.python.framework import config as tf_config

    was_on = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    yield
    if was_on:
        tf_config.enable_op_determinism()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's XLA")
def test_under_xla_the_loss_is_the_dense_ctc_with_the_same_values(without_op_determinism):
    # TensorFlow's CTC kernel has no XLA version: a jit-compiled train step takes the dense CTC.
    logits, labels, lengths, emission = _random_batch(seed=5)
    lp = tf.nn.log_softmax(logits).numpy()
    y = pack_targets(emission, labels, lengths)
    compiled = tf.function(lambda y, lp: CTCLoss(reduction=None)(y, lp), jit_compile=True)
    np.testing.assert_allclose(compiled(y, lp).numpy(), per_example(y, lp), rtol=1e-5)


def test_emission_longer_than_output_is_clipped():
    lp = log_probs(1, 5, seed=3)
    y = pack_targets([50], [[7, 8]], [2])
    assert per_example(y, lp)[0] == pytest.approx(reference_nll(lp[0], [7, 8]) / 2, rel=1e-4)


def test_ctc_feasible_counts_repeats():
    labels = np.array([[1, 1, 1], [1, 2, 1], [1, 2, 9]])
    assert ctc_feasible(labels, [3, 3, 2], [5, 3, 2]).tolist() == [True, True, True]
    assert ctc_feasible(labels, [3, 3, 2], [4, 2, 1]).tolist() == [False, False, False]
    # The padding beyond the label length never counts as a repeat.
    assert ctc_feasible([[4, 9, 9]], [1], [1]).tolist() == [True]
    assert ctc_feasible([[]], [0], [0]).tolist() == [False]


def test_pack_targets_layout_and_tensor_version():
    y = pack_targets([10, 7], [[1, 2, 3], [4, 99, 99]], [3, 1])
    assert y.dtype == np.int32
    assert y.tolist() == [[10, 1, 2, 3], [7, 4, -1, -1]]
    t = pack_targets_tensor(np.array([10, 7]), np.array([[1, 2, 3], [4, 99, 99]]), np.array([3, 1]))
    assert ops.convert_to_numpy(t).tolist() == y.tolist()
    with pytest.raises(ValueError):
        pack_targets([1], [[1, 2]], [3])


def test_serialization_round_trip():
    loss = CTCLoss(reduction="sum", name="ctc")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, CTCLoss)
    assert (restored.blank, restored.reduction, restored.name) == (98, "sum", "ctc")
    lp = log_probs(2, 8)
    y = pack_targets([8, 8], [[1, 2], [3, 0]], [2, 1])
    assert float(restored(y, lp)) == pytest.approx(float(loss(y, lp)))


def test_compiled_model_saves_and_reloads_with_the_loss(tmp_path):
    inputs = keras.Input((None, 99))
    outputs = keras.layers.Activation("log_softmax")(keras.layers.Dense(99)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss=CTCLoss())
    x = np.random.default_rng(0).normal(size=(2, 6, 99)).astype("float32")
    y = pack_targets([6, 4], [[1, 2, 2], [5, 0, 0]], [3, 1])
    model.train_on_batch(x, y)  # builds the optimizer, whose state is saved too
    before = model.evaluate(x, y, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.loss, CTCLoss)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(before, rel=1e-6)
