"""A virtual wristband: a session file published as LSL streams, at the recording's pace.

- the EMG: 32 float32 channels at 2 kHz (``emgtf.live.lsl.emg_info``, labelled
  ``left_1 .. right_16``), pushed a chunk at a time, each sample stamped with its recorded time
  moved onto the LSL clock (so jitter and gaps of the recording are kept), each chunk when the
  clock reaches its last sample;
- the ground truth (``emgtf.live.truth``): one marker per key of the session's keystrokes at
  its press time, and an end marker at the last sample.

After the end the outlets stay up until their consumers leave (at most ``linger`` seconds).
``speed`` plays faster (2: twice as fast; the timestamps are compressed alike).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from emgtf.errors import EmgtfError
from emgtf.live.lsl import emg_info, marker, marker_info, pylsl

TRUTH_SUFFIX = "-keystrokes"


@dataclass
class Published:
    """What ``publish_session`` sent."""

    samples: int
    keys: int
    seconds: float  # of signal
    wall_seconds: float


def truth_name(name: str) -> str:
    """The ground-truth marker stream's name of an EMG stream ``name``."""
    return name + TRUTH_SUFFIX


def publish_session(session_path, *, name: str, source_id: str | None = None, speed: float = 1.0,
                    chunk_ms: float = 40.0, wait: float | None = None, linger: float = 10.0,
                    log: Callable[[str], None] = lambda line: None,
                    should_stop: Callable[[], bool] = lambda: False) -> Published:
    """Publishes ``session_path``; ``wait``: seconds to wait for the first consumer of the EMG
    stream before starting (None: as long as it takes; 0: start at once); ``linger``: seconds the
    outlets stay up after the end, so that consumers take the last chunks."""
    from emgtf.data import EMGSession

    if not speed > 0:
        raise EmgtfError(f"speed must be > 0, got {speed}")
    if not chunk_ms > 0:
        raise EmgtfError(f"chunk_ms must be > 0, got {chunk_ms}")
    lsl = pylsl()
    with EMGSession(session_path) as session:
        times = session.timestamps
        total = len(session)
        truth = session.ground_truth(float(times[0]), float(times[-1])) if session.keystrokes else None
        source_id = source_id or f"emgtf-replay:{session.session_name}"
        emg_outlet = lsl.StreamOutlet(emg_info(name, source_id), 0, 10)
        truth_outlet = lsl.StreamOutlet(marker_info(truth_name(name), source_id + TRUTH_SUFFIX,
                                                    "ground-truth key presses (emgtf.live.truth)"))
        log(f"publishing {session.path.name} ({total / 2000:.1f} s, {len(truth or [])} keys) as LSL "
            f"streams '{name}' (EMG) and '{truth_name(name)}' (key presses)")
        if wait is None or wait > 0:
            log(f"waiting for a consumer of '{name}'")
            deadline = None if wait is None else time.monotonic() + wait
            while not emg_outlet.wait_for_consumers(0.2):
                if should_stop():
                    return Published(0, 0, 0.0, 0.0)
                if deadline is not None and time.monotonic() > deadline:
                    raise EmgtfError(f"no consumer of LSL stream '{name}' within {wait:g} s")
            log("a consumer connected; publishing")
        chunk = max(1, round(chunk_ms * 2000 / 1000))
        start = lsl.local_clock() + 0.05
        stamps = start + (times - times[0]) / speed
        press = start + (truth.timestamps - times[0]) / speed if truth is not None else np.zeros(0)
        next_key = 0
        wall = time.perf_counter()
        sent = 0
        for first in range(0, total, chunk):
            if should_stop():
                break
            stop = min(first + chunk, total)
            data = session.read(first, stop).reshape(stop - first, -1)
            wait_s = stamps[stop - 1] - lsl.local_clock()
            if wait_s > 0:
                time.sleep(wait_s)
            emg_outlet.push_chunk(data, stamps[first:stop].tolist())
            sent = stop
            while next_key < len(press) and press[next_key] <= stamps[stop - 1]:
                truth_outlet.push_sample([marker(event="press", index=next_key, key=truth.text[next_key])],
                                         float(press[next_key]))
                next_key += 1
        if sent == total:
            truth_outlet.push_sample([marker(event="end", samples=total)], float(stamps[-1]))
        deadline = time.monotonic() + linger
        while time.monotonic() < deadline and (emg_outlet.have_consumers() or truth_outlet.have_consumers()):
            if should_stop():
                break
            time.sleep(0.05)
    return Published(sent, next_key, sent / 2000, time.perf_counter() - wall)
