"""The live path's pieces without a stream: the gap policy's splitting, the streaming resampler
against scipy's polyphase filter, channel maps, and key events from decoder updates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import firwin

from emgtf.errors import EmgtfError
from emgtf.live.channels import ChannelMap
from emgtf.live.gaps import GapDetector
from emgtf.live.keys import KeyTracker
from emgtf.live.resample import StreamingResampler
from tests.helpers import sample_times


def test_gaps_split_the_stream_where_samples_are_missing_back_or_not_finite():
    rate = 2000.0
    times = 100 + np.arange(1000) / rate
    times[600:] += 0.2  # 200 ms missing after sample 599
    data = np.ones((1000, 32), np.float32)
    data[300:303, 5] = np.nan
    data[303, 7] = np.inf
    detector = GapDetector(rate, 0.05)
    runs = []
    for start in range(0, 1000, 80):  # chunk boundaries must not matter
        runs += detector.split(data[start : start + 80], times[start : start + 80])
    # Runs between breaks; a run continues over chunk boundaries (no gap there).
    breaks = [(r.gap.kind, r.gap.dropped, round(r.gap.seconds, 4)) for r in runs if r.gap is not None]
    assert breaks == [("nonfinite", 4, round(times[304] - times[299], 4)), ("time", 0, round(0.2 + 1 / rate, 4))]
    assert sum(len(r.samples) for r in runs) == 996  # the 4 bad samples dropped, no other
    assert np.isfinite(np.concatenate([r.samples for r in runs])).all()
    gap = [r.gap for r in runs if r.gap is not None][1]
    assert gap.describe().startswith("200 ms gap (about 400 samples missing) after LSL time 100.299")
    # A clock that goes back, then a jittered clock (intervals 0.3..0.7 ms) breaks nowhere.
    back = GapDetector(rate, 0.05)
    assert [r.gap.kind for r in back.split(data[:10], np.r_[times[:5], times[:5] - 1]) if r.gap] == ["back"]
    jitter = sample_times(4000, "jittered", seed=1)
    assert [r.gap for r in GapDetector(rate).split(np.zeros((4000, 32)), jitter)] == [None]


@pytest.mark.parametrize("rate_in", [1000.0, 2048.0, 4000.0, 1500.0])
def test_the_streaming_resampler_is_scipys_polyphase_filter_whatever_the_chunks(rate_in):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 2, 3))
    t = 10 + np.arange(3000) / rate_in
    chunked = StreamingResampler(rate_in, 2000.0)
    outs, times, pos = [], [], 0
    while pos < len(x):
        k = int(rng.integers(1, 200))
        y, ty = chunked.push(x[pos : pos + k], t[pos : pos + k])
        outs.append(y)
        times.append(ty)
        pos += k
    y, ty = np.concatenate(outs), np.concatenate(times)
    whole, _ = StreamingResampler(rate_in, 2000.0).push(x, t)
    np.testing.assert_array_equal(y, whole)
    # The reference: upsample by zeros, convolve with resample_poly's filter, take every down-th
    # output from the filter's centre.
    r = chunked
    h = firwin(2 * r.half_len + 1, 1 / max(r.up, r.down), window=("kaiser", 5.0)) * r.up
    upsampled = np.zeros((len(x) * r.up, 2, 3))
    upsampled[:: r.up] = x
    full = np.apply_along_axis(lambda v: np.convolve(v, h), 0, upsampled)
    n = np.arange(len(y))
    np.testing.assert_allclose(y, full[n * r.down + r.half_len], atol=1e-5)
    assert len(y) >= len(x) * r.up // r.down - 2 * r.half_len // r.down - 2  # all but the filter's delay
    np.testing.assert_allclose(ty, 10 + n / 2000.0, atol=1e-9)  # times on the output grid


def test_channel_maps():
    labels = [f"c{i}" for i in range(40)]
    chosen = ChannelMap.parse("8-23,c24,25-39", 40, labels)
    data = np.arange(3 * 40, dtype=np.float32).reshape(3, 40)
    picked = chosen.take(data)
    assert picked.shape == (3, 2, 16)
    np.testing.assert_array_equal(picked[:, 0, 0], data[:, 8])
    np.testing.assert_array_equal(picked[:, 1, 15], data[:, 39])
    assert ChannelMap.parse(None, 32).identity
    for spec, count, message in (
        (None, 34, r"has 34 channels, not 32 \(two bands of 16\); give channels="),
        ("0-15", 40, "names 16 channels; it must name 32"),
        ("0-15,16-30,45", 40, "channel 45 is not among the 40"),
        ("0-15,15-30", 40, "names a channel twice"),
        ("0-15,x", 40, "'x' is neither an index"),
    ):
        with pytest.raises(EmgtfError, match=message):
            ChannelMap.parse(spec, count, labels)


def test_key_events_retract_and_commit_what_the_beam_revises():
    tracker = KeyTracker()
    assert tracker.update("", "ab") == [{"event": "key", "index": 0, "key": "a", "final": False},
                                        {"event": "key", "index": 1, "key": "b", "final": False}]
    # The beam revises "b" to "c" and commits "a".
    assert tracker.update("a", "cd") == [
        {"event": "retract", "index": 1, "key": "b"},
        {"event": "commit", "index": 0, "key": "a"},
        {"event": "key", "index": 1, "key": "c", "final": False},
        {"event": "key", "index": 2, "key": "d", "final": False},
    ]
    assert tracker.update("acd", "") == [{"event": "commit", "index": 1, "key": "c"},
                                         {"event": "commit", "index": 2, "key": "d"}]
    assert tracker.update("acde", "") == [{"event": "key", "index": 3, "key": "e", "final": True}]
    assert tracker.update("acde", "") == []
