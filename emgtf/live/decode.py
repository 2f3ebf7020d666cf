"""The live loop: EMG from an inlet, through a StreamingDecoder, to key events; and what it
measured (the text, its CER against a replay's ground truth, key latencies, CPU per chunk).

Each pull takes what has arrived (waiting at most 0.1 s for a first sample); samples are
gathered to ``chunk_samples`` (40 ms) before a push, as the file replay's chunks. Gaps restart
the decoder (``emgtf.live.gaps``); the keys before a gap stay, and the text runs on.

Ends: at the ground truth's end marker once every sample up to it has been decoded; when the
outlet stays away (or sends nothing) for ``timeout`` seconds; or at Ctrl-C (the caller stops
``LiveDecoder.run`` through ``should_stop``). ``LiveDecoder.finish`` then decodes what
was held back.

Pipeline delay: from the LSL time of a chunk's last sample to the publication of the key events
it produced (transport, waiting for a whole chunk, the model step and the search); it holds for
any weights, where key latencies need a trained model's keys.

Latency of a key: the alignment of ``emgtf.inference.replay.key_latencies`` (decoded keys
matched to the ground truth), from the key's press (the replay's marker time) to the local LSL
clock when its ``key`` event was published (``shown``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from emgtf.errors import EmgtfError
from emgtf.live.gaps import DEFAULT_GAP_SECONDS, GapDetector
from emgtf.live.inlet import StreamLost
from emgtf.live.keys import KeyTracker
from emgtf.live.lsl import SAMPLE_RATE, describe, pylsl

PULL_SECONDS = 0.1
STALL_SECONDS = 2.0  # no samples for this long: say so once
MAX_GAP_LINES = 10  # then count them silently
TRUTH_AGAIN_SECONDS = 5.0  # a restarted replay's key-press stream, looked for once its EMG is back


@dataclass
class LiveResult:
    """What a live decode measured; ``target`` / ``rates`` None without a ground truth."""

    stream: str
    prediction: str
    target: str | None
    rates: dict | None
    latencies: np.ndarray  # seconds, one per matched key
    chunk_cpu: np.ndarray  # seconds of process CPU time per push
    chunk_samples: int
    seconds: float  # of signal decoded
    wall_seconds: float
    gaps: int
    ended: str
    pipeline: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))  # seconds, per key event


    def latency_line(self) -> str:
        if self.target is None:
            return "latency: no ground truth (truth=NAME: a replay's key-press marker stream)"
        if not len(self.latencies):
            return f"latency: no decoded key matches a key press (0 of {len(self.target)} keys)"
        p50, p90, p99 = np.percentile(self.latencies, [50, 90, 99])
        return (f"latency: median {p50:.3f} s, p90 {p90:.3f} s, p99 {p99:.3f} s from key press to its "
                f"marker ({len(self.latencies)} of {len(self.target)} keys matched)")

    def cpu_line(self) -> str:
        if not len(self.chunk_cpu):
            return "chunk CPU: no chunks decoded"
        p50, p99 = np.percentile(self.chunk_cpu, [50, 99]) * 1000
        pipeline = ""
        if len(self.pipeline):
            d50, d99 = np.percentile(self.pipeline, [50, 99]) * 1000
            pipeline = f"; chunk's last sample to its key markers: median {d50:.1f} ms, p99 {d99:.1f} ms"
        return (f"chunk CPU: median {p50:.2f} ms, p99 {p99:.2f} ms per {1000 * self.chunk_samples / SAMPLE_RATE:g} "
                f"ms chunk{pipeline} ({len(self.chunk_cpu)} chunks; {self.seconds:.1f} s of signal in "
                f"{self.wall_seconds:.1f} s wall; {self.gaps} gaps; ended: {self.ended})")

    def summary(self) -> dict:
        """The figures as one JSON-able dict (``jsonl=true``'s last line, ``benchmark.py live``)."""
        out = {"event": "summary", "stream": self.stream, "keys": len(self.prediction), "text": self.prediction,
               "seconds": round(self.seconds, 3), "wall_seconds": round(self.wall_seconds, 3),
               "chunks": len(self.chunk_cpu), "chunk_ms": 1000 * self.chunk_samples / SAMPLE_RATE,
               "gaps": self.gaps, "ended": self.ended}
        if len(self.chunk_cpu):
            p50, p99 = np.percentile(self.chunk_cpu, [50, 99]) * 1000
            out |= {"cpu_ms_per_chunk_median": round(float(p50), 3), "cpu_ms_per_chunk_p99": round(float(p99), 3)}
        if self.rates is not None:
            out |= {"cer": round(self.rates["CER"], 3), "truth": self.target, "target_keys": len(self.target),
                    "keys_matched": len(self.latencies)}
        if len(self.pipeline):
            p50, p99 = np.percentile(self.pipeline, [50, 99]) * 1000
            out |= {"pipeline_ms_median": round(float(p50), 2), "pipeline_ms_p99": round(float(p99), 2)}
        if len(self.latencies):
            p50, p90, p99 = np.percentile(self.latencies, [50, 90, 99]) * 1000
            out |= {"latency_ms_median": round(float(p50), 1), "latency_ms_p90": round(float(p90), 1),
                    "latency_ms_p99": round(float(p99), 1)}
        return out


def warm_up(streamer, chunk_samples: int) -> None:
    """Pushes a chunk of zeros and resets: the step's first call (its tracing, a second or more)
    happens before the stream, not on its first chunk."""
    from emgtf import NUM_BANDS, NUM_CHANNELS

    streamer.reset()
    streamer.push(np.zeros((chunk_samples, NUM_BANDS, NUM_CHANNELS), np.float32))
    streamer.reset()


class LiveDecoder:
    """Decodes an ``EMGInlet`` with ``streamer``.

    Args:
        channel_map: the inlet's ``ChannelMap``.
        chunk_samples: samples gathered per push.
        sinks: callables ``(events, lsl_time, shown_time)`` of the key events
            (``KeyOutlet``, ``JsonLines``).
        truth: a ``TruthInlet``, or None.
        timeout: seconds a lost or silent outlet is waited for (None: until stopped).
        find_again: ``(info, seconds) -> info or None``: the outlet back after a loss (the EMG's,
            and the truth's of a restarted replay).
        log: one line of news (to stderr).
        on_update: ``(update, stream_seconds)`` of each push (the command's display).
    """

    def __init__(self, streamer, inlet, channel_map, *, chunk_samples: int, sinks=(), truth=None,
                 timeout: float | None = None, gap_seconds: float = DEFAULT_GAP_SECONDS,
                 resample: bool = False, find_again: Callable | None = None,
                 log: Callable[[str], None] = lambda line: None, on_update: Callable | None = None):
        from emgtf.live.resample import StreamingResampler

        self.streamer, self.inlet, self.channel_map = streamer, inlet, channel_map
        self.chunk_samples = int(chunk_samples)
        self.sinks, self.truth, self.timeout = list(sinks), truth, timeout
        self.log, self.on_update = log, on_update
        self.find_again = find_again
        rate = inlet.rate
        self.detector = GapDetector(rate, gap_seconds)
        self.resampler = StreamingResampler(rate, SAMPLE_RATE) if resample and abs(rate - SAMPLE_RATE) > 1e-6 else None
        self.tracker = KeyTracker()
        self.base = ""  # keys of the segments before the last gap
        self.pending: list[np.ndarray] = []
        self.pending_times: list[np.ndarray] = []
        self.shown: list[tuple[float, int, str]] = []
        self.cpu: list[float] = []
        self.pipeline: list[float] = []  # from a chunk's last sample to its key events
        self.decoded = 0  # samples pushed, at 2 kHz
        self.gaps = 0
        self.last_time = None  # LSL time of the last sample decoded
        self.received_time = None  # of the last sample received
        self.ended = "running"
        self.should_stop = lambda: False
        self.streamer.reset()
        self._wall = time.perf_counter()

    # --- the loop ---------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Decodes until the end of a replay, a timeout, or ``should_stop()`` (Ctrl-C)."""
        self.should_stop = should_stop
        quiet_since = time.monotonic()
        stalled = False
        while True:
            if should_stop():
                self.ended = "stopped (Ctrl-C)"
                return
            try:
                samples, stamps = self.inlet.pull(PULL_SECONDS)
            except StreamLost:
                if not self._wait_for_return():
                    return
                quiet_since, stalled = time.monotonic(), False
                continue
            if self.truth is not None:
                self.truth.poll()
            if not len(stamps):
                if self._at_end():
                    self.ended = "end of the replay"
                    return
                quiet = time.monotonic() - quiet_since
                if quiet > STALL_SECONDS and not stalled:
                    stalled = True
                    self.log(f"no samples from {describe(self.inlet.info)} for {STALL_SECONDS:g} s "
                             f"(stalled); {self._waiting()}")
                if self.timeout is not None and quiet > self.timeout:
                    self.log(f"no samples for {self.timeout:g} s: stopping")
                    self.ended = "stalled"
                    return
                continue
            if stalled:
                self.log(f"samples again after {time.monotonic() - quiet_since:.1f} s")
            quiet_since, stalled = time.monotonic(), False
            self.received_time = float(stamps[-1])
            emg = self.channel_map.take(samples)
            for run in self.detector.split(emg, stamps):
                if run.gap is not None:
                    self._gap(run.gap.describe())
                data, times = run.samples, run.timestamps
                if self.resampler is not None:
                    data, times = self.resampler.push(data, times)
                self._feed(data, times)
            if self._at_end():
                self.ended = "end of the replay"
                return

    def _at_end(self) -> bool:
        end = self.truth.end_time if self.truth is not None else None
        # Two inlets' clock corrections differ by microseconds: a millisecond of slack.
        return end is not None and self.received_time is not None and self.received_time >= end - 1e-3

    def _waiting(self) -> str:
        return "waiting" + (f" up to {self.timeout:g} s" if self.timeout is not None else " (Ctrl-C stops)")

    def _wait_for_return(self) -> bool:
        """A lost outlet: says so, restarts the decoder, and waits for the outlet to come back
        (True) or for the timeout (False)."""
        info = self.inlet.info
        after = f" after LSL time {self.last_time:.3f}" if self.last_time is not None else ""
        if self.truth is not None:
            self.truth.poll()
            if self._at_end():
                self.ended = "end of the replay"
                return False
        self.log(f"lost LSL stream {describe(info)}{after}; {self._waiting()} for it to return")
        self._restart()
        started = time.monotonic()
        while True:
            left = None if self.timeout is None else self.timeout - (time.monotonic() - started)
            if left is not None and left <= 0:
                self.log(f"LSL stream '{info.name()}' did not return within {self.timeout:g} s: stopping")
                self.ended = "stream lost"
                return False
            back = self.find_again(info, 0.5 if left is None else min(0.5, left)) if self.find_again else None
            if self.should_stop():
                self.ended = "stopped (Ctrl-C)"
                return False
            if back is not None:
                same = (back.channel_count(), back.nominal_srate(), back.channel_format())
                if same != (info.channel_count(), info.nominal_srate(), info.channel_format()):
                    self.log(f"LSL stream {describe(back)} came back with other channels, rate or format: stopping")
                    self.ended = "stream changed"
                    return False
                if self.truth is not None:
                    self._truth_again()
                try:
                    self.inlet.open(back)
                except (StreamLost, EmgtfError):  # gone again, or not answering yet
                    continue
                self.detector.reset()
                self.log(f"LSL stream '{info.name()}' is back after {time.monotonic() - started:.1f} s; "
                         "decoding restarts")
                return True

    def _truth_again(self) -> None:
        """The EMG outlet is back: if it is a restarted replay, its key presses come on a new
        marker outlet too; connect to it before the EMG inlet (a replay sends nothing until its
        EMG has a consumer, so no press is missed), or the keys decoded after the restart would
        have no presses to be matched to (no latencies, no CER) and the replay's end would go
        unseen. An EMG outlet that restarted alone (the truth still up) leaves the truth as it is."""
        if self.find_again is None:
            return
        self.truth.poll()
        old = self.truth.info
        # A lost truth is waited for a little (its replay starts it with the EMG outlet, so it
        # resolves within a resolver's round trip); a live one is only looked at for a new instance.
        back = self.find_again(old, TRUTH_AGAIN_SECONDS if self.truth.lost else 0.5)
        if back is None:
            if self.truth.lost:
                self.log(f"ground-truth stream '{old.name()}' did not come back with the EMG; the CER and "
                         f"latencies cover the {len(self.truth.keys)} key presses before")
            return
        try:
            self.truth.open(back)
        except EmgtfError as e:
            self.log(f"{e}; the CER and latencies cover the {len(self.truth.keys)} key presses before")
            return
        self.log(f"ground-truth stream '{old.name()}' is back too ({len(self.truth.keys)} key presses before)")

    def _gap(self, what: str) -> None:
        self.gaps += 1
        if self.gaps <= MAX_GAP_LINES:
            more = "; further gaps are counted, not shown" if self.gaps == MAX_GAP_LINES else ""
            self.log(f"{what}: the decoder restarts (keys so far kept){more}")
        self._restart()

    # --- decoding ---------------------------------------------------------------------------

    def _feed(self, data: np.ndarray, times: np.ndarray) -> None:
        """Gathers samples; pushes them ``chunk_samples`` at a time (after a stall too, so the
        step keeps its one traced shape and each push is one chunk's work)."""
        if not len(times):
            return
        self.pending.append(data)
        self.pending_times.append(times)
        waiting = sum(len(p) for p in self.pending)
        if waiting < self.chunk_samples:
            return
        data, times = np.concatenate(self.pending), np.concatenate(self.pending_times)
        whole = waiting - waiting % self.chunk_samples
        for first in range(0, whole, self.chunk_samples):
            self._push(data[first : first + self.chunk_samples], times[first + self.chunk_samples - 1])
        self.pending, self.pending_times = ([data[whole:]], [times[whole:]]) if whole < waiting else ([], [])

    def _push(self, chunk: np.ndarray, when: float) -> None:
        cpu = time.process_time()
        update = self.streamer.push(chunk)
        self.cpu.append(time.process_time() - cpu)
        self.decoded += len(chunk)
        self.last_time = float(when)
        self._publish(update, self.last_time)

    def _push_pending(self) -> None:
        if self.pending:
            data, times = np.concatenate(self.pending), np.concatenate(self.pending_times)
            self.pending, self.pending_times = [], []
            self._push(data, times[-1])

    def _restart(self) -> None:
        """Ends the segment before a gap (its held-back keys are decoded) and starts another."""
        self._push_pending()
        if self.streamer.received:
            update = self.streamer.finish()
            self._publish(update, self.last_time, timed=False)
            self.base += update.committed
        self.streamer.reset()
        if self.resampler is not None:
            self.resampler.reset()

    def _publish(self, update, when: float, timed: bool = True) -> None:
        """``timed``: the events follow from the chunk that ends at ``when`` (not from a restart's
        flush, which may come long after), so their pipeline delay counts."""
        committed = self.base + update.committed
        events = self.tracker.update(committed, update.partial)
        if events:
            shown = pylsl().local_clock()
            for sink in self.sinks:
                sink(events, when, shown)
            if timed:
                self.pipeline.append(shown - when)
            self.shown.append((shown, len(committed), update.partial))
        if self.on_update is not None:
            self.on_update(dataclasses.replace(update, committed=committed), self.decoded / SAMPLE_RATE)

    def finish(self) -> LiveResult:
        """Decodes what was held back; the result."""
        from emgtf.inference.replay import key_latencies
        from emgtf.metrics import error_rates

        self._restart()
        prediction = self.base
        target = rates = None
        latencies = np.zeros(0)
        if self.truth is not None:
            self.truth.poll()
            target = self.truth.text
            if target:
                rates = error_rates([prediction], [target])
                latencies = key_latencies(prediction, target, self.truth.press_times, self.shown)
                latencies = latencies[np.isfinite(latencies)]
        return LiveResult(self.inlet.info.name(), prediction, target, rates, latencies, np.asarray(self.cpu),
                          self.chunk_samples, self.decoded / SAMPLE_RATE, time.perf_counter() - self._wall,
                          self.gaps, self.ended, np.asarray(self.pipeline))
