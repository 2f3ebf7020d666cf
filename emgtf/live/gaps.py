"""Splitting what an inlet delivers into runs of contiguous, finite samples.

The gap policy. A model's state (its kept frames, a rolling norm's statistics) describes the
signal just before the next sample; after missing samples it would read two separate stretches
of signal as one. So where consecutive timestamps are more than ``gap_seconds`` apart (default
50 ms: 100 samples at 2 kHz, well above a device's chunk jitter), or go back in time by as
much (an outlet that restarted its clock), or where samples are not finite (NaN or infinite:
dropped, and a gap around them), the decoder finishes the signal before the gap (its keys are
kept) and starts afresh after it. Shorter gaps are taken as jitter: the samples are decoded as
if contiguous.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_GAP_SECONDS = 0.05


@dataclass(frozen=True)
class Gap:
    """What broke the stream before a run: ``kind`` "time" (missing samples, from the timestamps),
    "back" (timestamps went back), "nonfinite" (``dropped`` NaN or infinite samples); ``after``
    the LSL time of the last good sample before it, ``seconds`` the time it spans."""

    kind: str
    after: float
    seconds: float
    dropped: int = 0
    rate: float = 2000.0

    def describe(self) -> str:
        if self.kind == "nonfinite":
            return (f"{self.dropped} sample{'s' if self.dropped != 1 else ''} with NaN or infinite values "
                    f"after LSL time {self.after:.3f} dropped")
        if self.kind == "back":
            return f"timestamps went back {-self.seconds:.3f} s after LSL time {self.after:.3f}"
        missing = max(0, round(self.seconds * self.rate) - 1)
        return f"{1000 * (self.seconds - 1 / self.rate):.0f} ms gap (about {missing} samples missing) after LSL time {self.after:.3f}"


@dataclass
class Run:
    """Contiguous finite samples and their times; ``gap``: what came before, if it broke the stream."""

    samples: np.ndarray
    timestamps: np.ndarray
    gap: Gap | None = None


class GapDetector:
    """``split(samples (n, channels), timestamps (n,))`` -> the ``Run`` s, in order; remembers
    the last timestamp across calls."""

    def __init__(self, rate: float, gap_seconds: float = DEFAULT_GAP_SECONDS):
        self.rate = float(rate)
        self.gap_seconds = float(gap_seconds)
        self.reset()

    def reset(self) -> None:
        """A new stream (a restarted outlet): no gap before its first sample."""
        self.last_time = None  # of the last sample seen, finite or not
        self.last_good = None  # of the last finite sample
        self.pending_drop = 0  # non-finite samples not yet reported (at the end of a call)

    def split(self, samples: np.ndarray, timestamps: np.ndarray) -> list[Run]:
        timestamps = np.asarray(timestamps, dtype=np.float64)
        if not len(timestamps):
            return []
        finite = np.isfinite(samples).reshape(len(samples), -1).all(axis=1)
        previous = np.concatenate([[timestamps[0] if self.last_time is None else self.last_time], timestamps[:-1]])
        step = timestamps - previous
        broken = (step > self.gap_seconds) | (step < -self.gap_seconds)
        runs: list[Run] = []
        start = None
        gap = None
        for i in range(len(timestamps)):
            if not finite[i]:
                if start is not None:
                    runs.append(Run(samples[start:i], timestamps[start:i], gap))
                    start, gap = None, None
                self.pending_drop += 1
                continue
            if broken[i] or self.pending_drop:
                if start is not None:
                    runs.append(Run(samples[start:i], timestamps[start:i], gap))
                    start = None
                after = self.last_good if self.last_good is not None else previous[i]
                if self.pending_drop and self.last_good is not None:
                    gap = Gap("nonfinite", after, timestamps[i] - after, self.pending_drop, self.rate)
                elif self.pending_drop:  # the stream starts with bad samples: nothing to restart
                    gap = Gap("nonfinite", previous[i], 0.0, self.pending_drop, self.rate)
                else:
                    gap = Gap("back" if step[i] < 0 else "time", after, step[i], 0, self.rate)
                self.pending_drop = 0
            if start is None:
                start = i
            self.last_good = timestamps[i]
        if start is not None:
            runs.append(Run(samples[start:], timestamps[start:], gap))
        self.last_time = timestamps[-1]
        return runs
