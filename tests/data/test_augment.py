"""Raw-signal augmentations, through the real tf.data pipeline on real session files."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import make_session_file
from emgtf.data import Augmentations, make_dataset
from emgtf.data.augment import as_augmentations, augment_batch
from emgtf.errors import EmgtfError

WINDOW = dict(window_length=1000, padding=(100, 100), batch_size=8)


def pairs(files, augment, **options):
    """(original, augmented) batches of the same windows, as numpy."""
    kwargs = {**WINDOW, **options}
    plain = make_dataset(files, **kwargs)
    augmented = make_dataset(files, seed=kwargs.pop("seed", 0), augment=augment, **kwargs)
    for a, b in zip(plain, augmented):
        yield {k: v.numpy() for k, v in a.items()}, {k: v.numpy() for k, v in b.items()}


@pytest.fixture(scope="module")
def noise_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("augment")
    return [make_session_file(folder / f"n{i}.hdf5", num_samples=12_000, seed=i)[0] for i in range(2)]


def test_config_from_dict_and_errors():
    aug = as_augmentations({"band_rotation": True, "alignment_jitter": 120, "down_up": [2, 4]})
    assert aug == Augmentations(band_rotation=True, alignment_jitter=120, down_up=(2, 4))
    assert Augmentations.from_config(aug.to_config()) == aug
    assert Augmentations.reference() == Augmentations(band_rotation=True, alignment_jitter=120)
    assert not Augmentations().active and aug.active
    assert as_augmentations(None) is None
    with pytest.raises(EmgtfError, match="unknown augmentation 'noise'"):
        as_augmentations({"noise": 0.1})
    with pytest.raises(EmgtfError, match="'fraction' argument"):
        as_augmentations({"fraction": 0.5})
    for bad, name in [({"alignment_jitter": -1}, "alignment_jitter"), ({"band_rotation": "yes"}, "band_rotation"),
                      ({"down_up": [1]}, "down_up"), ({"down_up": "2"}, "down_up"),
                      ({"time_stretch": 1.5}, "time_stretch"), ({"gaussian_noise": float("nan")}, "gaussian_noise"),
                      ({"channel_mask": 32}, "channel_mask"), ({"down_up_prob": 2}, "down_up_prob")]:
        with pytest.raises(EmgtfError, match=f"augmentation '{name}'"):
            as_augmentations(bad)


def test_band_rotation_rolls_each_band_by_minus_one_zero_or_one(noise_files):
    seen = set()
    for plain, aug in pairs(noise_files, {"band_rotation": True}):
        np.testing.assert_array_equal(aug["emg_lengths"], plain["emg_lengths"])
        for x, y in zip(plain["emg"], aug["emg"]):
            shifts = []
            for band in range(2):
                matches = [s for s in (-1, 0, 1) if np.array_equal(y[:, band], np.roll(x[:, band], s, axis=-1))]
                assert len(matches) == 1, "each band is its input rolled by -1, 0 or +1 channels"
                shifts.append(matches[0])
            seen.add(tuple(shifts))
    assert {s for pair in seen for s in pair} == {-1, 0, 1}
    assert any(left != right for left, right in seen)  # the bands are drawn independently


def test_alignment_jitter_shifts_one_band_against_the_other(noise_files):
    shifts = []
    for plain, aug in pairs(noise_files, {"alignment_jitter": 40}):
        for x, y, n, m in zip(plain["emg"], aug["emg"], plain["emg_lengths"], aug["emg_lengths"]):
            s = n - m  # |shift|
            assert 0 <= s <= 40
            left_first = np.array_equal(y[:m, 0], x[s:n, 0]) and np.array_equal(y[:m, 1], x[: n - s, 1])
            right_first = np.array_equal(y[:m, 0], x[: n - s, 0]) and np.array_equal(y[:m, 1], x[s:n, 1])
            assert left_first or right_first
            assert not y[m:].any()
            shifts.append(s if left_first else -s)
    assert len(set(shifts)) > 5 and min(shifts) < 0 < max(shifts)


def _spectrum(x):
    """Mean power spectrum over windows and channels of (N, T, 2, 16)."""
    return (np.abs(np.fft.rfft(x, axis=1)) ** 2).mean(axis=(0, 2, 3))


@pytest.mark.parametrize("factor", [2, 4])
def test_down_up_keeps_length_and_removes_energy_above_new_nyquist(noise_files, factor):
    plain_all, aug_all = [], []
    for plain, aug in pairs(noise_files, {"down_up": [factor], "down_up_prob": 1.0}):
        np.testing.assert_array_equal(aug["emg_lengths"], plain["emg_lengths"])
        assert aug["emg"].shape == plain["emg"].shape
        full = plain["emg_lengths"] == 1200  # the windows not clamped at a session end
        plain_all.append(plain["emg"][full])
        aug_all.append(aug["emg"][full])
    before, after = _spectrum(np.concatenate(plain_all)), _spectrum(np.concatenate(aug_all))
    freqs = np.fft.rfftfreq(1200, d=1 / 2000)
    nyquist = 1000 / factor
    above, below = freqs > 1.15 * nyquist, freqs < 0.8 * nyquist
    assert after[above].sum() < 1e-3 * before[above].sum()
    assert after[below].sum() == pytest.approx(before[below].sum(), rel=0.05)


def test_down_up_probability_resamples_some_windows(noise_files):
    changed = []
    for plain, aug in pairs(noise_files, {"down_up": [2, 4], "down_up_prob": 0.5}):
        changed += [not np.array_equal(x, y) for x, y in zip(plain["emg"], aug["emg"])]
    assert 0 < sum(changed) < len(changed)


def test_gaussian_noise_has_the_relative_std(noise_files):
    ratios = []
    for plain, aug in pairs(noise_files, {"gaussian_noise": 0.1}):
        for x, y, n in zip(plain["emg"], aug["emg"], plain["emg_lengths"]):
            rms = np.sqrt((x[:n] ** 2).mean(axis=0))
            ratios.append((y[:n] - x[:n]).std(axis=0) / rms)
            assert not y[n:].any()  # the padding stays zero
    assert np.mean(ratios) == pytest.approx(0.1, rel=0.02)
    assert np.all(np.abs(np.asarray(ratios) - 0.1) < 0.015)


def test_channel_mask_zeros_at_most_n_channels(noise_files):
    counts = []
    for plain, aug in pairs(noise_files, {"channel_mask": 5}):
        for x, y in zip(plain["emg"], aug["emg"]):
            zeroed = ~y.any(axis=0)  # (2, 16)
            np.testing.assert_array_equal(y[:, ~zeroed], x[:, ~zeroed])
            counts.append(int(zeroed.sum()))
    assert max(counts) <= 5 and len(set(counts)) > 2 and max(counts) > 0


def test_time_stretch_keeps_length_and_resamples_linearly(tmp_path):
    # A ramp (value = sample index / 1000) shows the stretch factor as the slope of the output.
    ramp = np.repeat((np.arange(12_000, dtype=np.float32) / 1000)[:, None, None], 2, axis=1)
    emg = np.repeat(ramp, 16, axis=2)
    path, _ = make_session_file(tmp_path / "ramp.hdf5", num_samples=12_000, emg=emg)
    slopes = []
    for plain, aug in pairs([path], {"time_stretch": 0.1}, window_length=2000, padding=(300, 200)):
        assert aug["emg"].shape == plain["emg"].shape
        for x, y, n, m, start in zip(plain["emg"], aug["emg"], plain["emg_lengths"], aug["emg_lengths"],
                                     plain["start"]):
            assert int(n * 0.9) - 1 <= m <= n
            assert not y[m:].any()
            values = y[:m, 0, 0]
            slope = np.diff(values).mean() * 1000  # input slope is 1
            assert 1 / 1.1 - 1e-3 <= slope <= 1 / 0.9 + 1e-3
            np.testing.assert_allclose(np.diff(values), slope / 1000, atol=1e-5)  # linear
            if slope < 1:  # stretched: cropped to the length with the labelled centre in place
                assert m == n
                centre = (300 if start > 0 else 0) + 1000
                assert y[centre, 0, 0] == pytest.approx(x[centre, 0, 0], abs=2e-3)
            slopes.append(slope)
    assert min(slopes) < 0.97 and max(slopes) > 1.03


def test_augment_batch_is_deterministic_in_its_seed():
    emg = tf.random.stateless_normal((4, 600, 2, 16), seed=[1, 2])
    batch = {"emg": emg, "emg_lengths": tf.constant([600, 600, 500, 300], tf.int32)}
    aug = Augmentations(band_rotation=True, alignment_jitter=20, gaussian_noise=0.05, down_up=(2,),
                        time_stretch=0.1, channel_mask=3)
    a = augment_batch(batch, aug, tf.constant(11, tf.int64))
    b = augment_batch(batch, aug, tf.constant(11, tf.int64))
    c = augment_batch(batch, aug, tf.constant(12, tf.int64))
    np.testing.assert_array_equal(a["emg"].numpy(), b["emg"].numpy())
    assert not np.array_equal(a["emg"].numpy(), c["emg"].numpy())
    lengths = a["emg_lengths"].numpy()
    assert (lengths <= [600, 600, 500, 300]).all()
    for x, n in zip(a["emg"].numpy(), lengths):
        assert not x[n:].any()


def test_augmentations_only_when_given(noise_files):
    for plain, aug in pairs(noise_files, {}):  # all switched off: identity
        np.testing.assert_array_equal(plain["emg"], aug["emg"])
