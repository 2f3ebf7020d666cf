"""The course reports' preprocessing layers against numpy / scipy references: the low-pass filter,
the downsampling with and without anti-aliasing, min-max normalisation, the electrode subset and
the random crop; each through run_layer_test."""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops
from scipy.signal import firwin

from emgtf.errors import EmgtfError
from emgtf.models.layers import (
    Downsample,
    ElectrodeSubset,
    LowPassFilter,
    MinMaxNormalization,
    RandomTimeCrop,
)
from tests.helpers import random_emg, random_spectrogram, run_layer_test

FS = 2000


def numpy_fir(x, taps, stride=1):
    """Each channel of (B, T, ...) convolved with taps, unpadded, every stride-th output."""
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    out = np.stack([np.stack([np.convolve(flat[b, :, c], taps, mode="valid")[::stride]
                              for c in range(flat.shape[2])], -1) for b in range(len(flat))])
    return out.reshape(out.shape[0], out.shape[1], *x.shape[2:])


def sine(freq, samples, amplitude=1.0):
    t = np.arange(samples) / FS
    x = amplitude * np.sin(2 * np.pi * freq * t)
    return np.broadcast_to(x[None, :, None, None], (1, samples, 2, 16)).astype("float32")


def amplitude(x, freq):
    """The amplitude of the sinusoid of ``freq`` Hz in each channel of (1, T, 2, 16) (least
    squares against sin and cos at the signal's rate)."""
    t = np.arange(x.shape[1]) / FS
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], 1)
    coef, *_ = np.linalg.lstsq(basis, x[0].reshape(x.shape[1], -1), rcond=None)
    return np.hypot(*coef)


# --- low-pass ------------------------------------------------------------------------------------


def test_lowpass_equals_numpy_convolution_with_the_firwin_design(tmp_path):
    x = random_emg(2, 600, seed=1)
    out = run_layer_test(LowPassFilter, {"cutoff_hz": 30.0, "num_taps": 101}, x, tmp_path,
                         expected_output_shape=(2, 500, 2, 16), expected_trainable_weights=0)
    want = numpy_fir(x, firwin(101, 30.0, fs=FS, window="hamming"))
    np.testing.assert_allclose(out, want, atol=2e-5)
    assert LowPassFilter(30.0, num_taps=101).compute_output_length(np.array([600, 100, 50])).tolist() \
        == [500, 0, 0]


def test_lowpass_keeps_slow_signal_and_removes_fast():
    layer = LowPassFilter(30.0, num_taps=255)
    slow = ops.convert_to_numpy(layer(sine(5, 4000)))
    fast = ops.convert_to_numpy(layer(sine(200, 4000)))
    # The filter's delay is (255 - 1) / 2 samples; the amplitude does not care.
    assert np.all(np.abs(amplitude(slow, 5) - 1) < 0.01)
    assert np.all(amplitude(fast, 200) < 0.01)


def test_lowpass_shorter_input_gives_no_samples():
    out = LowPassFilter(30.0, num_taps=101)(np.zeros((1, 40, 2, 16), "float32"))
    assert tuple(out.shape) == (1, 0, 2, 16)


@pytest.mark.parametrize("cutoff", [1000.0, 1500.0, 0.0])
def test_lowpass_cutoff_outside_zero_to_nyquist_is_refused(cutoff):
    with pytest.raises(EmgtfError, match=r"cutoff_hz must be in \(0, 1000\) Hz"):
        LowPassFilter(cutoff)


# --- downsampling --------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [2, 4])
def test_downsample_without_anti_aliasing_keeps_every_nth_sample(factor, tmp_path):
    x = random_emg(2, 403, seed=2)
    out = run_layer_test(Downsample, {"factor": factor, "anti_alias": False}, x, tmp_path,
                         expected_output_shape=(2, 403 // factor, 2, 16))
    # The last sample of each whole block of factor samples.
    np.testing.assert_array_equal(out, x[:, factor - 1 :: factor][:, : 403 // factor])


@pytest.mark.parametrize("factor, num_taps", [(2, None), (4, None), (2, 66)])
def test_downsample_with_anti_aliasing_equals_filter_then_decimate(factor, num_taps, tmp_path):
    x = random_emg(2, 403, seed=3)
    # scipy.signal.decimate's FIR design: a Hamming window, cutoff at the new Nyquist frequency.
    taps = firwin(num_taps or 20 * factor + 1, 1.0 / factor, window="hamming")
    want = numpy_fir(x, taps, factor)
    out = run_layer_test(Downsample, {"factor": factor, "num_taps": num_taps}, x, tmp_path,
                         expected_output_shape=want.shape)
    np.testing.assert_allclose(out, want, atol=2e-5)
    layer = Downsample(factor, num_taps=len(taps))
    lengths = np.array([403, len(taps), len(taps) - 1, 0])
    assert layer.compute_output_length(lengths).tolist() == [len(want[0]), 1, 0, 0]


def test_anti_aliasing_removes_what_would_alias_and_keeps_the_band():
    # 700 Hz is above the 500 Hz Nyquist frequency of 1 kHz: kept every other sample, it folds
    # onto 300 Hz at full amplitude; the anti-aliasing filter removes it first.
    alias = sine(700, 4000)
    plain = ops.convert_to_numpy(Downsample(2, anti_alias=False)(alias))
    filtered = ops.convert_to_numpy(Downsample(2, anti_alias=True)(alias))
    at_1khz = dict(freq=300)
    assert np.all(amplitude_at(plain, 1000, **at_1khz) > 0.99)
    assert np.all(amplitude_at(filtered, 1000, **at_1khz) < 0.01)
    kept = ops.convert_to_numpy(Downsample(2, anti_alias=True)(sine(100, 4000)))
    assert np.all(np.abs(amplitude_at(kept, 1000, freq=100) - 1) < 0.01)


def amplitude_at(x, rate, freq):
    t = np.arange(x.shape[1]) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], 1)
    coef, *_ = np.linalg.lstsq(basis, x[0].reshape(x.shape[1], -1), rcond=None)
    return np.hypot(*coef)


def test_downsample_bad_factor_is_refused():
    with pytest.raises(EmgtfError, match="Downsample: factor must be an integer >= 1, got 0"):
        Downsample(0)


# --- min-max -------------------------------------------------------------------------------------


def test_minmax_scales_each_channel_of_each_example_to_0_1(tmp_path):
    x = random_emg(3, 500, seed=4) * np.linspace(0.5, 3, 32).reshape(1, 1, 2, 16).astype("float32")
    x[1, :, 0, 5] = 7.0  # a constant channel maps to 0
    out = run_layer_test(MinMaxNormalization, {}, x, tmp_path, expected_output_shape=x.shape)
    low, high = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    np.testing.assert_allclose(out, (x - low) / (high - low + 1e-6), atol=1e-6)
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(out[1, :, 0, 5], 0)
    varying = np.ones((3, 2, 16), bool)
    varying[1, 0, 5] = False
    np.testing.assert_allclose(out.min(axis=1)[varying], 0, atol=1e-6)
    np.testing.assert_allclose(out.max(axis=1)[varying], 1, atol=1e-5)


def test_minmax_of_zero_padded_high_passed_signal_keeps_the_signal_part():
    x = random_emg(1, 500, seed=5)
    x -= x.mean(axis=1, keepdims=True)  # high-pass filtered EMG: zero mean
    padded = np.concatenate([x, np.zeros((1, 100, 2, 16), "float32")], axis=1)
    layer = MinMaxNormalization()
    np.testing.assert_allclose(ops.convert_to_numpy(layer(padded))[:, :500],
                               ops.convert_to_numpy(layer(x)), atol=1e-6)


# --- electrode subset ----------------------------------------------------------------------------


def test_electrode_subset_zeroes_exactly_the_other_electrodes_of_both_bands(tmp_path):
    x = random_spectrogram(batch=2, frames=20)
    out = run_layer_test(ElectrodeSubset, {"channels": [0, 3, 4, 15]}, x, tmp_path,
                         expected_output_shape=x.shape)
    keep = np.zeros(16, bool)
    keep[[0, 3, 4, 15]] = True
    np.testing.assert_array_equal(out[:, :, :, keep], x[:, :, :, keep])
    np.testing.assert_array_equal(out[:, :, :, ~keep], 0)


@pytest.mark.parametrize("channels", [[], [16], [-1], [2, 2], [1.5]])
def test_electrode_subset_bad_channels_are_refused(channels):
    with pytest.raises(EmgtfError, match="ElectrodeSubset: channels must be distinct electrode "
                                         r"indices in 0..15"):
        ElectrodeSubset(channels)


# --- random crop ---------------------------------------------------------------------------------


def test_random_crop_takes_a_run_of_frames_while_training_only(tmp_path):
    x = random_spectrogram(batch=8, frames=60)
    out = run_layer_test(RandomTimeCrop, {"frames": 25, "seed": 1}, x, tmp_path,
                         expected_output_shape=x.shape)
    np.testing.assert_array_equal(out, x)  # inference: the identity
    layer = RandomTimeCrop(25, seed=1)
    cropped = ops.convert_to_numpy(layer(x, training=True))
    assert cropped.shape == (8, 25, 2, 16, 33)
    starts = []
    for b in range(8):
        matches = [s for s in range(36) if np.array_equal(cropped[b], x[b, s : s + 25])]
        assert len(matches) == 1
        starts.append(matches[0])
    assert len(set(starts)) > 2  # drawn per example
    # No more frames than the input has: the whole input.
    short = ops.convert_to_numpy(RandomTimeCrop(100, seed=0)(x, training=True))
    np.testing.assert_array_equal(short, x)
