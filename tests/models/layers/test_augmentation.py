"""SpecAugment and TemporalCropResize: mask and crop semantics, seeds, round trips."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from emgtf.models.layers import SpecAugment, TemporalCropResize
from tests.helpers import random_spectrogram, run_layer_test, save_and_load


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
    x = random_spectrogram()
    layer = SpecAugment(seed=0)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x)), x)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x, training=False)), x)


def test_time_masks_are_whole_frames_of_one_channel_and_bounded():
    x = random_spectrogram(batch=16)
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
    x = random_spectrogram(batch=32)
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
    x = random_spectrogram(batch=16)
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
    x = random_spectrogram(batch=8)
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
    x = random_spectrogram()
    model(x, training=True)
    loaded = save_and_load(model, tmp_path)
    assert loaded.layers[-1].get_config() == layer.get_config()
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded(x)), x)
    # Keras saves no random-generator state: a reloaded layer restarts from its seed.
    fresh = SpecAugment.from_config(layer.get_config())
    np.testing.assert_array_equal(ops.convert_to_numpy(fresh(x, training=True)),
                                  ops.convert_to_numpy(loaded(x, training=True)))


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
    loaded = save_and_load(model, tmp_path)
    assert loaded.layers[-1].get_config() == layer.get_config()
    x, n = random_spectrogram(batch=3, frames=40), np.array([40, 30, 20], "int32")
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded([x, n])), x)
    fresh = TemporalCropResize.from_config(layer.get_config())
    want = ops.convert_to_numpy(fresh(x, lengths=n, training=True))
    assert not np.array_equal(want, x)
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded([x, n], training=True)), want)


def test_spec_augment_layer_contract(tmp_path):
    x = random_spectrogram(batch=2, frames=40)
    out = run_layer_test(SpecAugment, {"n_time_masks": 2, "time_mask_param": 5, "seed": 3}, x, tmp_path,
                         expected_output_shape=x.shape, expected_trainable_weights=0)
    np.testing.assert_array_equal(out, x)  # identity at inference


def test_temporal_crop_resize_layer_contract(tmp_path):
    x = random_spectrogram(batch=2, frames=40)
    out = run_layer_test(TemporalCropResize, {"max_crop": 5, "seed": 3}, x, tmp_path,
                         expected_output_shape=x.shape, expected_trainable_weights=0)
    np.testing.assert_array_equal(out, x)
