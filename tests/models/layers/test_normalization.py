"""SpectrogramNorm: per-channel normalisation, running statistics, round trip. RollingTimeNorm:
numerics against numpy, padding, causality, frame by frame (streaming) against the whole call."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from emgtf.models.layers import RollingTimeNorm, SpectrogramNorm
from tests.helpers import random_spectrogram, run_layer_test, save_and_load


def channel_data(batch=8, frames=50, bins=33, seed=0):
    """Channel (band, electrode) has mean 3 + 0.5 * index and std 2 + 0.1 * index."""
    rng = np.random.default_rng(seed)
    index = np.arange(32).reshape(1, 1, 2, 16, 1)
    x = 3 + 0.5 * index + (2 + 0.1 * index) * rng.standard_normal((batch, frames, 2, 16, bins))
    return x.astype("float32")


def test_spectrogram_norm_normalizes_each_channel():
    x = channel_data()
    layer = SpectrogramNorm()
    out = ops.convert_to_numpy(layer(x, training=True))
    assert out.shape == x.shape
    np.testing.assert_allclose(out.mean(axis=(0, 1, 4)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 1, 4)), 1.0, atol=1e-3)
    # Running statistics per channel moved by (1 - momentum) towards the batch's.
    moving_mean = ops.convert_to_numpy(layer.moving_mean)
    np.testing.assert_allclose(moving_mean, 0.1 * x.mean(axis=(0, 1, 4)).reshape(-1), rtol=1e-4)
    assert layer.count_params() == 128
    assert sum(int(np.prod(w.shape)) for w in layer.trainable_weights) == 64


def test_spectrogram_norm_round_trip_keeps_running_statistics(tmp_path):
    inputs = keras.Input(shape=(None, 2, 16, 33))
    layer = SpectrogramNorm()
    model = keras.Model(inputs, layer(inputs))
    assert model.count_params() == 128
    x = channel_data()
    for _ in range(3):
        model(x, training=True)
    loaded = save_and_load(model, tmp_path)
    assert loaded.layers[-1].get_config() == layer.get_config()
    probe = channel_data(batch=2, seed=1)
    want = ops.convert_to_numpy(model(probe))
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded(probe)), want)
    # Inference uses the running statistics, not the probe's: not yet normalised after 3 steps.
    assert abs(want.mean()) > 0.5


def test_spectrogram_norm_layer_contract(tmp_path):
    x = random_spectrogram(batch=2, frames=30)
    run_layer_test(SpectrogramNorm, {}, x, tmp_path, expected_output_shape=x.shape,
                   expected_trainable_weights=2)


# --- RollingTimeNorm --------------------------------------------------------------------------


def numpy_rolling_norm(x, length=None, warmup=125, epsilon=0.1):
    """Independent float64 reference of one example (F, ...)."""
    x = np.asarray(x, np.float64)
    length = len(x) if length is None else length
    warm = min(warmup, length)
    seen = np.arange(1, len(x) + 1).reshape(-1, *[1] * (x.ndim - 1))
    mean = np.cumsum(x, axis=0) / seen
    var = np.cumsum(x * x, axis=0) / seen - mean * mean  # float64: no shift needed
    mean[:warm], var[:warm] = x[:warm].mean(axis=0), x[:warm].var(axis=0)
    return (x - mean) / np.sqrt(var + epsilon)


def stream_rolling_norm(layer, x, chunk, final=True):
    """Steps ``layer`` over ``x`` (F, ...) in chunks of ``chunk`` frames from a zero state;
    returns (the frames released by each step, the final step's release or None, state sizes)."""
    state = ops.convert_to_tensor(layer.initial_state(x.shape[1:]))
    released, sizes = [], set()
    for start in range(0, len(x), chunk):
        state, out = layer.step(state, x[start : start + chunk])
        released.append(ops.convert_to_numpy(out))
        sizes.add(tuple(state.shape))
    last = None
    if final:
        _, out = layer.step(state, x[:0], final=True)
        last = ops.convert_to_numpy(out)
    return released, last, sizes


def offset_frames(frames, seed=0):
    """(frames, 2, 3) with offsets from -20 to 30 and spreads from 0.5 to 4, like summed log
    powers: sums of the raw values would lose float32 precision within minutes."""
    rng = np.random.default_rng(seed)
    scale = np.array([[0.5, 1, 4], [2, 3, 1]])
    offset = np.array([[-20, -3, 0], [5, 12, 30]])
    return (offset + scale * rng.standard_normal((frames, 2, 3))).astype("float32")


def test_rolling_time_norm_matches_numpy_with_warmup():
    x = channel_data(batch=2, frames=40, bins=3)
    out = ops.convert_to_numpy(RollingTimeNorm(warmup=10)(x))
    for b in range(2):
        np.testing.assert_allclose(out[b], numpy_rolling_norm(x[b], warmup=10), rtol=1e-4, atol=1e-4)


def test_rolling_time_norm_ignores_padding_and_short_inputs_use_their_length():
    x = channel_data(batch=2, frames=30, bins=3)
    x[1, 12:] = 0.0  # a padded example of 12 frames, shorter than the warm-up
    lengths = np.array([30, 12], "int32")
    out = ops.convert_to_numpy(RollingTimeNorm(warmup=20)(x, lengths=lengths))
    np.testing.assert_allclose(out[0], numpy_rolling_norm(x[0], warmup=20), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out[1, :12], numpy_rolling_norm(x[1, :12], warmup=20), rtol=1e-4, atol=1e-4)


def test_rolling_time_norm_is_causal_after_the_warmup():
    x = channel_data(batch=1, frames=50, bins=2)
    later = x.copy()
    later[:, 30:] += 100.0
    a, b = (ops.convert_to_numpy(RollingTimeNorm(warmup=10)(v)) for v in (x, later))
    np.testing.assert_allclose(a[:, :30], b[:, :30], atol=1e-5)


def test_rolling_time_norm_layer_contract(tmp_path):
    x = random_spectrogram(batch=2, frames=30)
    run_layer_test(RollingTimeNorm, {"warmup": 8}, x, tmp_path, expected_output_shape=x.shape,
                   expected_trainable_weights=0)


@pytest.mark.parametrize("chunk", [1, 7, 125, 300])
def test_rolling_time_norm_frame_by_frame_equals_the_whole_call(chunk):
    x = offset_frames(130 + chunk * 2)  # past the warm-up by a few chunks
    layer = RollingTimeNorm()
    whole = ops.convert_to_numpy(layer(x[None]))[0]
    np.testing.assert_allclose(whole, numpy_rolling_norm(x), atol=1e-4)
    released, last, sizes = stream_rolling_norm(layer, x, chunk)
    assert sizes == {(layer.state_size(x.shape[1:]),)}  # fixed size: 1 + (3 + 125) * 6
    assert layer.state_size(x.shape[1:]) == 1 + 128 * 6
    # Nothing before the 125th frame; then the held-back frames with it, then each as it comes.
    seen = np.minimum(np.arange(1, len(released) + 1) * chunk, len(x))
    np.testing.assert_array_equal(np.cumsum([len(r) for r in released]), np.where(seen >= 125, seen, 0))
    assert len(last) == 0  # the warm-up was complete: nothing left for the end
    np.testing.assert_allclose(np.concatenate(released), whole, atol=1e-5)


@pytest.mark.parametrize("chunk", [1, 7, 125])
def test_a_stream_shorter_than_the_warmup_is_released_at_its_end(chunk):
    x = offset_frames(40, seed=1)
    layer = RollingTimeNorm()
    released, last, _ = stream_rolling_norm(layer, x, chunk)
    assert sum(len(r) for r in released) == 0
    np.testing.assert_allclose(last, ops.convert_to_numpy(layer(x[None]))[0], atol=1e-5)
    np.testing.assert_allclose(last, numpy_rolling_norm(x), atol=1e-4)
    # The warm-up's own size, as in a padded batch: a shorter warm-up is the whole-call's.
    short = RollingTimeNorm(warmup=10)
    released, last, _ = stream_rolling_norm(short, x, chunk)
    np.testing.assert_allclose(np.concatenate(released), numpy_rolling_norm(x, warmup=10), atol=1e-4)
    assert len(last) == 0


def test_rolling_time_norm_frame_by_frame_stays_accurate_over_an_hour():
    # 450,000 frames (an hour at 125 Hz) of offset, slowly drifting features, 100 steps: the
    # steps' running sums of the shifted frames stay within 1e-4 of float64 (measured 5e-6);
    # unshifted float32 sums of these values are off by 3.5.
    frames = 450_000
    x = offset_frames(frames, seed=2) + np.linspace(0, 2, frames, dtype="float32")[:, None, None]
    released, _, _ = stream_rolling_norm(RollingTimeNorm(), x, frames // 100, final=False)
    np.testing.assert_allclose(np.concatenate(released), numpy_rolling_norm(x), atol=1e-4)
