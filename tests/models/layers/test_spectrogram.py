"""LogSpectrogram: numerics against an independent numpy reference, lengths, round trip.

Written against keras.ops only, so the file also runs under KERAS_BACKEND=jax (the one
TensorFlow-graph test is skipped there).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import scipy.signal
from keras import ops

from emgtf.errors import EmgtfError
from emgtf.models.layers import LogSpectrogram, SpecAugment, TemporalCropResize, frames_for_samples
from tests.helpers import random_emg, run_layer_test, save_and_load


def numpy_log_spectrogram(x, n_fft=64, hop=16):
    """Independent float64 reference: (T, 2, 16) -> (F, 2, 16, n_fft // 2 + 1)."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    x = np.asarray(x, np.float64)
    frames = []
    for start in range(0, x.shape[0] - n_fft + 1, hop):
        segment = x[start:start + n_fft] * window[:, None, None]
        power = np.abs(np.fft.rfft(segment, axis=0)) ** 2 / np.sum(window**2)
        frames.append(np.moveaxis(np.log10(power + 1e-6), 0, -1))
    return np.stack(frames) if frames else np.zeros((0, *x.shape[1:], n_fft // 2 + 1))


def test_periodic_hann_is_scipys_dft_even_window():
    # Pins the reference's window convention independently of our own formula.
    ours = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(64) / 64)
    np.testing.assert_allclose(ours, scipy.signal.get_window("hann", 64, fftbins=True), atol=1e-12)


@pytest.mark.parametrize("time", [64, 65, 79, 80, 1000, 4007])
def test_log_spectrogram_matches_numpy(time):
    x = random_emg(2, time, seed=time)
    got = ops.convert_to_numpy(LogSpectrogram()(x))
    want = np.stack([numpy_log_spectrogram(example) for example in x])
    assert got.dtype == np.float32
    assert got.shape == want.shape == (2, 1 + (time - 64) // 16, 2, 16, 33)
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)


def test_log_spectrogram_other_fft_and_hop():
    x = random_emg(1, 500, seed=3)
    got = ops.convert_to_numpy(LogSpectrogram(n_fft=50, hop_length=7)(x))
    want = numpy_log_spectrogram(x[0], n_fft=50, hop=7)[None]
    assert got.shape == (1, 1 + (500 - 50) // 7, 2, 16, 26)
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)


def test_white_noise_scale_and_silence():
    x = np.random.default_rng(0).normal(0, 2.5, size=(2, 8000, 2, 16)).astype("float32")
    spec = ops.convert_to_numpy(LogSpectrogram()(x))
    # E[log10] of a chi-square power spectrum of variance 6.25: ~0.53 averaged over the bins.
    assert 0.45 < spec.mean() < 0.6
    silent = ops.convert_to_numpy(LogSpectrogram()(np.zeros((1, 100, 2, 16), "float32")))
    np.testing.assert_allclose(silent, -6.0, atol=1e-6)


def test_variable_length_functional_model_and_frame_counts():
    inputs = keras.Input(shape=(None, 2, 16))
    layer = LogSpectrogram()
    model = keras.Model(inputs, layer(inputs))
    assert model.output_shape == (None, None, 2, 16, 33)
    for time in (10, 63, 64, 79, 80, 95, 96, 8000, 10000):
        out = model(np.zeros((1, time, 2, 16), "float32"))
        frames = frames_for_samples(time)
        assert tuple(out.shape) == (1, frames, 2, 16, 33)
        assert frames == max(0, 1 + (time - 64) // 16)
        assert layer.compute_output_length(time) == frames
    assert frames_for_samples(63) == 0 and frames_for_samples(64) == 1
    assert frames_for_samples(8000) == 497 and frames_for_samples(10000) == 622


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow graph test")
def test_unknown_length_in_a_tensorflow_graph():
    import tensorflow as tf

    layer = LogSpectrogram()
    graph = tf.function(layer, input_signature=[tf.TensorSpec((None, None, 2, 16), tf.float32)])
    for time in (40, 64, 1000):
        x = random_emg(2, time)
        out = graph(x).numpy()
        assert out.shape == (2, frames_for_samples(time), 2, 16, 33)
        np.testing.assert_allclose(out, ops.convert_to_numpy(layer(x)), atol=1e-5)


def test_compute_output_length_keeps_the_kind():
    layer = LogSpectrogram(n_fft=64, hop_length=16)
    lengths = np.array([0, 63, 64, 80, 8000, 10000], dtype=np.int32)
    want = np.array([0, 0, 1, 2, 497, 622])

    assert isinstance(layer.compute_output_length(8000), int)

    out = layer.compute_output_length(lengths)
    assert isinstance(out, np.ndarray) and out.dtype == np.int32
    np.testing.assert_array_equal(out, want)

    tensor = layer.compute_output_length(ops.convert_to_tensor(lengths))
    assert ops.is_tensor(tensor)
    assert keras.backend.standardize_dtype(tensor.dtype) == "int32"
    np.testing.assert_array_equal(ops.convert_to_numpy(tensor), want)

    np.testing.assert_array_equal(frames_for_samples(lengths, n_fft=32, hop_length=8),
                                  np.maximum(0, 1 + (lengths - 32) // 8))
    with pytest.raises(EmgtfError, match="integers"):
        frames_for_samples(np.array([100.0]))


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(EmgtfError, match="hop_length"):
        LogSpectrogram(hop_length=0)
    with pytest.raises(EmgtfError, match="n_fft"):
        LogSpectrogram(n_fft=64.0)
    with pytest.raises(EmgtfError, match="time_mask_param"):
        SpecAugment(time_mask_param=-1)
    with pytest.raises(EmgtfError, match="max_crop"):
        TemporalCropResize(max_crop=-3)
    with pytest.raises(EmgtfError, match="input must be"):
        LogSpectrogram()(np.zeros((4, 100), "float32"))


def test_log_spectrogram_round_trip(tmp_path):
    inputs = keras.Input(shape=(None, 2, 16))
    model = keras.Model(inputs, LogSpectrogram(n_fft=32, hop_length=8)(inputs))
    loaded = save_and_load(model, tmp_path)
    layer = loaded.layers[-1]
    assert isinstance(layer, LogSpectrogram)
    assert (layer.n_fft, layer.hop_length) == (32, 8)
    x = random_emg(2, 777)
    np.testing.assert_array_equal(ops.convert_to_numpy(model(x)), ops.convert_to_numpy(loaded(x)))


def test_log_spectrogram_layer_contract(tmp_path):
    out = run_layer_test(LogSpectrogram, {"n_fft": 32, "hop_length": 8}, random_emg(2, 777), tmp_path,
                         expected_output_shape=(2, 1 + (777 - 32) // 8, 2, 16, 17),
                         expected_trainable_weights=0)
    assert np.isfinite(out).all()


def test_spectrum_bands_sum_splashnets_six_bands(tmp_path):
    from emgtf.models.layers import SpectrumBands

    x = random_emg(2, 64 + 16 * 9)
    spec = ops.convert_to_numpy(LogSpectrogram()(x))
    out = run_layer_test(SpectrumBands, {}, spec, tmp_path, expected_output_shape=(2, 10, 2, 16, 6),
                         expected_trainable_weights=0)
    groups = [[1], [2, 3], [4, 5, 6, 7], [8, 9, 10, 11], list(range(12, 22)), list(range(22, 33))]
    want = np.stack([spec[..., g].sum(-1) for g in groups], axis=-1)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4)
    with pytest.raises(EmgtfError, match="edges"):
        SpectrumBands(edges=[3, 2])
