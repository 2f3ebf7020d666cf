"""A stream at another nominal rate, resampled to 2 kHz chunk by chunk (``resample=true``).

The polyphase resampler of ``scipy.signal.resample_poly`` (its Kaiser-windowed FIR
anti-aliasing filter, designed by ``scipy.signal.firwin``, for the rational ratio ``up /
down``), computed incrementally: output sample ``n`` is the filter's centred output at input
position ``n * down / up``, emitted once the input it reads has arrived. So a stream resamples
the same whatever its chunking, and costs a fixed delay of the filter's half length (about 10
input samples, 5 ms at 2 kHz) and ``K = ceil(taps / up)`` kept input samples.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from emgtf.errors import EmgtfError


def ratio(rate_in: float, rate_out: float, max_denominator: int = 1000) -> tuple[int, int]:
    """(up, down), coprime, with ``rate_in * up / down == rate_out`` (to 1e-6)."""
    frac = Fraction(rate_out / rate_in).limit_denominator(max_denominator)
    if frac <= 0 or abs(float(frac) * rate_in - rate_out) > 1e-6 * rate_out:
        raise EmgtfError(f"cannot resample {rate_in:g} Hz to {rate_out:g} Hz by a ratio of integers up to "
                         f"{max_denominator}")
    return frac.numerator, frac.denominator


class StreamingResampler:
    """``push(samples (n, ...), timestamps (n,))`` -> the resampled samples and their times
    (interpolated from the input's) that are complete so far."""

    def __init__(self, rate_in: float, rate_out: float):
        from scipy.signal import firwin

        self.rate_in, self.rate_out = float(rate_in), float(rate_out)
        self.up, self.down = ratio(rate_in, rate_out)
        widest = max(self.up, self.down)
        self.half_len = 10 * widest  # scipy.signal.resample_poly's design
        h = firwin(2 * self.half_len + 1, 1.0 / widest, window=("kaiser", 5.0)) * self.up
        self.taps_per_phase = -(-len(h) // self.up)
        padded = np.zeros(self.taps_per_phase * self.up)
        padded[: len(h)] = h
        # phases[p, k] = h[p + k * up]: output m = n * down + half_len reads x[m // up - k].
        self.phases = padded.reshape(self.taps_per_phase, self.up).T.astype(np.float64)
        self.reset()

    def reset(self) -> None:
        """Starts a new stream (after a gap: no samples of before it are read)."""
        self._data = None  # input samples [start, start + len)
        self._times = np.zeros(0)
        self._start = -self.taps_per_phase  # zeros before the stream's first sample
        self.received = 0  # input samples so far
        self.emitted = 0  # output samples so far

    def push(self, samples: np.ndarray, timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        samples = np.asarray(samples, dtype=np.float64)
        if self._data is None:
            self._data = np.zeros((self.taps_per_phase, *samples.shape[1:]))
        self._data = np.concatenate([self._data, samples])
        self._times = np.concatenate([self._times, np.asarray(timestamps, dtype=np.float64)])
        self.received += len(samples)
        ready = (self.received * self.up - 1 - self.half_len) // self.down + 1
        n = np.arange(self.emitted, max(self.emitted, ready))
        if not len(n):
            return np.zeros((0, *samples.shape[1:]), np.float32), np.zeros(0)
        m = n * self.down + self.half_len
        rows = (m // self.up)[:, None] - np.arange(self.taps_per_phase)[None, :] - self._start
        out = np.einsum("nk,nk...->n...", self.phases[m % self.up], self._data[rows])
        position = n * self.down / self.up  # in input samples
        first_time = self.received - len(self._times)
        times = np.interp(position, np.arange(first_time, self.received), self._times)
        self.emitted = int(n[-1]) + 1
        # Keep what the next output reads: from its first row on.
        keep = (self.emitted * self.down + self.half_len) // self.up - self.taps_per_phase + 1
        if keep > self._start:
            cut = keep - self._start
            self._data = self._data[cut:]
            self._start = keep
        drop = max(0, len(self._times) - (self.received - max(0, int(np.floor(self.emitted * self.down / self.up)) - 1)))
        self._times = self._times[drop:]
        return out.astype(np.float32), times
