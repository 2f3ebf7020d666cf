"""Feature layers: spectrogram numerics against numpy, augmentation semantics, round trips.

Written against keras.ops only, so the file also runs under KERAS_BACKEND=jax (the one
TensorFlow-graph test is skipped there).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

import keras
from keras import ops

from emgtf.errors import EmgtfError
from emgtf.features import (
    LogSpectrogram,
    SpecAugment,
    SpectrogramNorm,
    TemporalCropResize,
    frames_for_samples,
)


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


def emg(batch, time, seed=0):
    """White noise of std 2.5 (the real data's scale) plus a per-channel sinusoid."""
    rng = np.random.default_rng(seed)
    t = np.arange(time)[None, :, None, None] / 2000.0
    freqs = rng.uniform(20, 900, size=(batch, 1, 2, 16))
    x = rng.normal(0, 2.5, size=(batch, time, 2, 16)) + 5 * np.sin(2 * np.pi * freqs * t)
    return x.astype("float32")


def spectrogram(batch=4, frames=120, seed=0):
    return ops.convert_to_numpy(LogSpectrogram()(emg(batch, 64 + 16 * (frames - 1), seed)))


def round_trip(model, tmp_path, name="model.keras"):
    path = tmp_path / name
    model.save(path)
    return keras.saving.load_model(path)


# --- LogSpectrogram ---------------------------------------------------------------------------


def test_periodic_hann_is_scipys_dft_even_window():
    # Pins the reference's window convention independently of our own formula.
    ours = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(64) / 64)
    np.testing.assert_allclose(ours, scipy.signal.get_window("hann", 64, fftbins=True), atol=1e-12)


@pytest.mark.parametrize("time", [64, 65, 79, 80, 1000, 4007])
def test_log_spectrogram_matches_numpy(time):
    x = emg(2, time, seed=time)
    got = ops.convert_to_numpy(LogSpectrogram()(x))
    want = np.stack([numpy_log_spectrogram(example) for example in x])
    assert got.dtype == np.float32
    assert got.shape == want.shape == (2, 1 + (time - 64) // 16, 2, 16, 33)
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)


def test_log_spectrogram_other_fft_and_hop():
    x = emg(1, 500, seed=3)
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
        x = emg(2, time)
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
    loaded = round_trip(model, tmp_path)
    layer = loaded.layers[-1]
    assert isinstance(layer, LogSpectrogram)
    assert (layer.n_fft, layer.hop_length) == (32, 8)
    x = emg(2, 777)
    np.testing.assert_array_equal(ops.convert_to_numpy(model(x)), ops.convert_to_numpy(loaded(x)))


# --- SpecAugment ------------------------------------------------------------------------------


def masked(layer, x):
    out = ops.convert_to_numpy(layer(x, training=True))
    is_masked = out == layer.mask_value
    # Everything not masked is untouched.
    np.testing.assert_array_equal(out[~is_masked], x[~is_masked])
    return is_masked


def runs(flags):
    """Lengths of the runs of True in a 1-D boolean array."""
    padded = np.concatenate([[0], flags.astype(int), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return edges[1::2] - edges[::2]


def test_spec_augment_is_identity_at_inference():
    x = spectrogram()
    layer = SpecAugment(seed=0)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x)), x)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x, training=False)), x)


def test_time_masks_are_whole_frames_of_one_channel_and_bounded():
    x = spectrogram(batch=16)
    layer = SpecAugment(n_time_masks=1, time_mask_param=25, n_freq_masks=0, mask_value=-9.0,
                        seed=1)
    is_masked = masked(layer, x)
    # A time mask covers all bins of a frame.
    per_frame = is_masked.all(axis=-1)
    np.testing.assert_array_equal(per_frame, is_masked.any(axis=-1))
    widths = []
    for b in range(16):
        for band in range(2):
            for ch in range(16):
                w = runs(per_frame[b, :, band, ch])
                assert len(w) <= 1  # one mask, one contiguous run
                widths.extend(w)
    assert widths and max(widths) <= 25
    assert len(set(widths)) > 5  # widths vary
    # Channels draw their own masks: an example's 32 channels do not share one pattern.
    for b in range(16):
        patterns = {per_frame[b, :, band, ch].tobytes() for band in range(2) for ch in range(16)}
        assert len(patterns) > 1 or not per_frame[b].any()


def test_several_masks_per_example_and_sometimes_none():
    x = spectrogram(batch=32)
    layer = SpecAugment(n_time_masks=3, time_mask_param=10, n_freq_masks=0, seed=2)
    per_frame = masked(layer, x).all(axis=-1)  # (B, F, 2, 16)
    counts = per_frame.sum(axis=1)
    assert counts.max() <= 3 * 10
    runs_per_channel = [len(runs(per_frame[b, :, band, ch]))
                        for b in range(32) for band in range(2) for ch in range(16)]
    assert 2 <= max(runs_per_channel) <= 3  # up to 3 masks (overlapping ones merge)
    # The number of masks is drawn per example, 0 included.
    assert (per_frame.reshape(32, -1).sum(axis=1) == 0).any()


def test_frequency_masks_hold_for_every_frame():
    x = spectrogram(batch=16)
    layer = SpecAugment(n_time_masks=0, n_freq_masks=1, freq_mask_param=4, mask_value=-9.0,
                        seed=3)
    is_masked = masked(layer, x)
    per_bin = is_masked.all(axis=1)  # (B, 2, 16, C)
    np.testing.assert_array_equal(per_bin, is_masked.any(axis=1))
    widths = [w for b in range(16) for band in range(2) for ch in range(16)
              for w in runs(per_bin[b, band, ch])]
    assert widths and max(widths) <= 4
    examples_with_masks = [b for b in range(16) if per_bin[b].any()]
    assert 0 < len(examples_with_masks) < 16  # 0 or 1 mask per example
    for b in examples_with_masks:
        assert len({per_bin[b, band, ch].tobytes() for band in range(2) for ch in range(16)}) > 1


def test_spec_augment_default_masks_and_seeds():
    x = spectrogram(batch=8)
    first = ops.convert_to_numpy(SpecAugment(seed=7)(x, training=True))
    again = ops.convert_to_numpy(SpecAugment(seed=7)(x, training=True))
    other = ops.convert_to_numpy(SpecAugment(seed=8)(x, training=True))
    np.testing.assert_array_equal(first, again)
    assert (first == 0.0).any() and not np.array_equal(first, other)
    layer = SpecAugment(seed=7)
    a, b = (ops.convert_to_numpy(layer(x, training=True)) for _ in range(2))
    assert not np.array_equal(a, b)  # the generator advances between batches


def test_spec_augment_round_trip(tmp_path):
    inputs = keras.Input(shape=(None, 2, 16, 33))
    layer = SpecAugment(n_time_masks=2, time_mask_param=9, n_freq_masks=1, freq_mask_param=3,
                        mask_value=-1.5, seed=11)
    model = keras.Model(inputs, layer(inputs))
    x = spectrogram()
    model(x, training=True)
    loaded = round_trip(model, tmp_path)
    assert loaded.layers[-1].get_config() == layer.get_config()
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded(x)), x)
    # Keras saves no random-generator state: a reloaded layer restarts from its seed.
    fresh = SpecAugment.from_config(layer.get_config())
    np.testing.assert_array_equal(ops.convert_to_numpy(fresh(x, training=True)),
                                  ops.convert_to_numpy(loaded(x, training=True)))


# --- TemporalCropResize -----------------------------------------------------------------------


def ramp(batch, frames, features=(2, 3)):
    """x[b, t, ...] = t + 1000 * feature index: the content records where each frame came from."""
    t = np.arange(frames, dtype="float32")[None, :, None]
    offsets = 1000 * np.arange(np.prod(features), dtype="float32")[None, None, :]
    x = np.broadcast_to(t + offsets, (batch, frames, np.prod(features)))
    return np.ascontiguousarray(x.reshape(batch, frames, *features))


def test_crop_resize_is_identity_at_inference_and_without_crop():
    x = ramp(4, 100)
    np.testing.assert_array_equal(ops.convert_to_numpy(TemporalCropResize(seed=0)(x)), x)
    out = TemporalCropResize(max_crop=0, seed=0)(x, training=True)
    np.testing.assert_array_equal(ops.convert_to_numpy(out), x)


def numpy_crop_resize(frames_in, crop, start):
    """Independent reference: drop frames [start, start + crop), resize back with np.interp."""
    kept = np.delete(np.arange(frames_in, dtype=float), np.arange(start, start + crop))
    return np.interp(np.linspace(0, len(kept) - 1, frames_in), np.arange(len(kept)), kept)


def test_crop_resize_removes_a_run_and_stretches_linearly():
    batch, frames, max_crop = 32, 100, 25
    x = ramp(batch, frames)
    out = ops.convert_to_numpy(TemporalCropResize(max_crop=max_crop, seed=4)(x, training=True))
    assert out.shape == x.shape
    # Every feature of a frame moves together: out = source position + the feature's offset.
    src = out[..., 0, 0]
    np.testing.assert_allclose(out - src[:, :, None, None], x - x[:, :, :1, :1], atol=1e-3)
    # The ramp's output is the interpolated source position: find the crop that explains it.
    candidates = [(c, s) for c in range(max_crop + 1) for s in range(frames - c + 1)]
    references = np.stack([numpy_crop_resize(frames, c, s) for c, s in candidates])
    explained = np.all(np.abs(src[:, None, :] - references[None]) < 1e-3, axis=-1)
    assert explained.any(axis=1).all(), "an example is no linear resize of a cropped input"
    crops = {candidates[int(np.argmax(row))][0] for row in explained}
    assert len(crops) > 5  # crops vary (and are within max_crop, the candidates' bound)


def test_crop_resize_with_lengths_leaves_padding_alone():
    lengths = np.array([60, 50, 40, 30, 20, 10, 6, 6, 6, 6, 6, 6, 2, 1, 0], dtype="int32")
    x = ramp(len(lengths), 60, features=(1,))
    layer = TemporalCropResize(max_crop=25, seed=5)
    out = ops.convert_to_numpy(layer(x, lengths=lengths, training=True))
    crops = []
    for b, length in enumerate(lengths):
        np.testing.assert_array_equal(out[b, length:], x[b, length:])  # padding untouched
        # Within the valid frames: a linear resize of a crop of at most half the example.
        if length == 0:
            continue
        matches = [(c, s) for c in range(min(25, length // 2) + 1) for s in range(length - c + 1)
                   if np.allclose(out[b, :length, 0], numpy_crop_resize(length, c, s), atol=1e-3)]
        assert matches, f"example {b} (length {length}) is no resize of a crop of <= half of it"
        crops.append(matches[0][0])
    assert max(crops[:6]) > 3


def test_crop_resize_round_trip_with_lengths_input(tmp_path):
    inputs = keras.Input(shape=(None, 2, 16, 33))
    lengths = keras.Input(shape=(), dtype="int32")
    layer = TemporalCropResize(max_crop=7, seed=3)
    model = keras.Model([inputs, lengths], layer(inputs, lengths=lengths))
    loaded = round_trip(model, tmp_path)
    assert loaded.layers[-1].get_config() == layer.get_config()
    x, n = spectrogram(batch=3, frames=40), np.array([40, 30, 20], "int32")
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded([x, n])), x)
    fresh = TemporalCropResize.from_config(layer.get_config())
    want = ops.convert_to_numpy(fresh(x, lengths=n, training=True))
    assert not np.array_equal(want, x)
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded([x, n], training=True)), want)


# --- SpectrogramNorm --------------------------------------------------------------------------


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
    loaded = round_trip(model, tmp_path)
    assert loaded.layers[-1].get_config() == layer.get_config()
    probe = channel_data(batch=2, seed=1)
    want = ops.convert_to_numpy(model(probe))
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded(probe)), want)
    # Inference uses the running statistics, not the probe's: not yet normalised after 3 steps.
    assert abs(want.mean()) > 0.5


def test_full_feature_stack_round_trip(tmp_path):
    inputs = keras.Input(shape=(None, 2, 16), name="emg")
    x = LogSpectrogram()(inputs)
    x = SpecAugment(seed=1)(x)
    x = TemporalCropResize(seed=2)(x)
    outputs = SpectrogramNorm()(x)
    model = keras.Model(inputs, outputs)
    assert model.count_params() == 128
    data = emg(2, 1000)
    model(data, training=True)
    loaded = round_trip(model, tmp_path)
    np.testing.assert_array_equal(ops.convert_to_numpy(model(data)),
                                  ops.convert_to_numpy(loaded(data)))
    assert [type(layer).__name__ for layer in loaded.layers[1:]] == [
        "LogSpectrogram", "SpecAugment", "TemporalCropResize", "SpectrogramNorm"]
