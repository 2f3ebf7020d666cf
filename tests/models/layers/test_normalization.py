"""SpectrogramNorm: per-channel normalisation, running statistics, round trip."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from emgtf.models.layers import RollingTimeNorm, SpectrogramNorm
from tests.helpers import random_spectrogram, run_layer_test, save_and_load


def channel_data(batch=8, frames=50, bins=33, seed=0):
    """Channel (band, electrode) has mean 3 + 0.5 * index and std 2 + 0.1 * index."""
    rng = np.random.default_rng(seed)
    index = np.arange(32).reshape(1, 1, 2, 16, 1)
    x = 3 + 0.5 * index + (2 + 0.1 * index) * rng.standard_normal((batch, frames, 2, 16, bins))
    return x.astype("float32")


def test_spectrogram_norm_normalises_each_channel():
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
    out = np.empty_like(x)
    for t in range(len(x)):
        seen = x[:warm] if t < warm else x[: t + 1]
        out[t] = (x[t] - seen.mean(axis=0)) / np.sqrt(seen.var(axis=0) + epsilon)
    return out


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
