"""Replaying a session file through a ``StreamingDecoder`` as if
it came live, and measuring it: the final keys and their CER (as ``emgtf.transcribe``), the
latency of each key, and the CPU time of each chunk.

Latency of a key: the decoded keys are aligned to the keystrokes with rapidfuzz's
``Levenshtein.opcodes`` (decoded -> typed); each decoded key in an ``equal`` block is matched to
its keystroke. Its latency is the time from the keystroke's press (its ``start``) to the moment
the output of a push first shows it: the session time of the push's last sample plus the wall
time the push took. "Shows it" means committed-or-partial keys that begin with every decoded key
up to and including it. CPU time of a chunk is the process CPU time of its push (all threads).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rapidfuzz.distance import Levenshtein

from emgtf.errors import SessionFileError

__all__ = ["Replay", "key_latencies", "replay"]


@dataclass
class Replay:
    """What ``replay`` measured. ``target`` and ``rates`` are None without keystrokes."""

    session: str
    prediction: str
    target: str | None
    rates: dict | None
    seconds: float  # of signal
    chunk_samples: int
    latencies: np.ndarray  # seconds, one per matched key
    chunk_cpu: np.ndarray  # seconds of CPU time, one per push
    wall_seconds: float
    sample_rate: int

    def latency_line(self) -> str:
        if self.target is None:
            return "latency: no keystrokes in the file"
        if not len(self.latencies):
            return f"latency: no decoded key matches a keystroke (0 of {len(self.target)} keys)"
        p50, p90, p99 = np.percentile(self.latencies, [50, 90, 99])
        return (
            f"latency: median {p50:.3f} s, p90 {p90:.3f} s, p99 {p99:.3f} s from key press to "
            f"first shown ({len(self.latencies)} of {len(self.target)} keys matched)"
        )

    def cpu_line(self) -> str:
        p50, p99 = np.percentile(self.chunk_cpu, [50, 99]) * 1000
        chunk_ms = 1000 * self.chunk_samples / self.sample_rate
        return (
            f"chunk CPU: median {p50:.2f} ms, p99 {p99:.2f} ms per {chunk_ms:g} ms chunk "
            f"({len(self.chunk_cpu)} chunks; {self.seconds:.1f} s of signal in "
            f"{self.wall_seconds:.1f} s wall)"
        )


def key_latencies(
    prediction: str, target: str, press_times: np.ndarray, shown: list[tuple[float, int, str]]
) -> np.ndarray:
    """Latency (seconds) of each decoded key that the alignment matches to a keystroke.

    ``shown``: in stream order, (time, committed length, partial keys) of each output, where
    the committed keys are always a prefix of ``prediction``.
    """
    first_shown = np.full(len(prediction), np.nan)
    reached = 0  # keys of the prediction already shown
    for when, committed, partial in shown:
        rest = prediction[committed:]
        common = 0
        for a, b in zip(partial, rest):
            if a != b:
                break
            common += 1
        upto = committed + common
        if upto > reached:
            first_shown[reached:upto] = when
            reached = upto
    latencies = []
    for op in Levenshtein.opcodes(prediction, target):
        if op.tag == "equal":
            for i, j in zip(range(op.src_start, op.src_end), range(op.dest_start, op.dest_end)):
                latencies.append(first_shown[i] - press_times[j])
    return np.asarray(latencies, dtype=np.float64)


def replay(
    streamer,
    session_path,
    *,
    chunk_samples: int,
    realtime: bool = False,
    on_update: Callable | None = None,
) -> Replay:
    """Feeds a session file to ``streamer`` ``chunk_samples`` at a time (at the recording's pace
    with ``realtime``, else as fast as it goes); ``on_update(update, stream_seconds)`` sees each
    output. Returns the final keys and the measurements."""
    from emgtf.data import EMGSession
    from emgtf.metrics import error_rates

    streamer.reset()
    with EMGSession(session_path) as session:
        times = session.timestamps
        num_samples = len(session)
        target = press = None
        if session.keystrokes:
            truth = session.ground_truth(float(times[0]), float(times[-1]))
            target, press = truth.text, truth.timestamps
        rate = streamer.rule.sample_rate
        if streamer.rule.emissions(num_samples) == 0:
            raise SessionFileError(
                session.path, f"{num_samples} samples is too short for {streamer.runner.family}, which "
                f"needs at least {streamer.rule.samples_for(1)} samples"
            )
        shown: list[tuple[float, int, str]] = []
        cpu = []
        wall_start = time.perf_counter()
        last_text = None
        for start in range(0, num_samples, chunk_samples):
            stop = min(start + chunk_samples, num_samples)
            chunk = session.read(start, stop)
            if realtime:  # the chunk is complete when its last sample has been recorded
                wait = wall_start + stop / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            pushed_at, cpu_at = time.perf_counter(), time.process_time()
            update = streamer.push(chunk)
            cpu.append(time.process_time() - cpu_at)
            took = time.perf_counter() - pushed_at
            if update.text != last_text:
                shown.append((float(times[stop - 1]) + took, len(update.committed), update.partial))
                last_text = update.text
            if on_update is not None:
                on_update(update, stop / rate)
        update = streamer.finish()
        shown.append((float(times[-1]), len(update.committed), ""))
        if on_update is not None:
            on_update(update, num_samples / rate)
        wall = time.perf_counter() - wall_start
        name = session.session_name
    prediction = update.committed
    rates = error_rates([prediction], [target]) if target is not None else None
    latencies = key_latencies(prediction, target, press, shown) if target is not None else np.zeros(0)
    return Replay(name, prediction, target, rates, num_samples / rate, chunk_samples, latencies,
                  np.asarray(cpu), wall, rate)
