"""The ground truth of a replay (``emgtf.live.wristband``): its keystroke marker stream.

Markers: ``{"event": "press", "index": i, "key": k}`` stamped with the key's press time, one per
key of the session's ground truth (``emgtf.data.EMGSession.ground_truth``), and last
``{"event": "end", "samples": n}`` stamped with the time of the session's last sample. Their
times are clock-corrected like the EMG's, so a press and the decoded key's marker are on one
clock.
"""

from __future__ import annotations

import json

import numpy as np

from emgtf.errors import EmgtfError
from emgtf.live.lsl import describe, pylsl


class TruthInlet:
    """Collects the presses and the end of a ground-truth marker stream; ``poll()`` takes what
    has arrived without waiting."""

    def __init__(self, info, open_timeout: float = 5.0):
        self.info = info
        self.keys: list[str] = []
        self.times: list[float] = []
        self.end_time: float | None = None
        self.ignored = 0  # markers that are not a replay's
        self.lost = False
        self.open_timeout = open_timeout
        self._inlet = None
        self.open(info)

    def open(self, info) -> None:
        """(Re)connects to the marker outlet ``info`` describes: after a replay was killed and
        started again, its new instance. The presses so far stay (the keys decoded before the
        restart are matched against them); the end is the new instance's."""
        lsl = pylsl()
        self.close()
        self.info, self.lost, self.end_time = info, False, None
        self._inlet = lsl.StreamInlet(info, max_buflen=360, recover=False, processing_flags=lsl.proc_clocksync)
        try:
            self._inlet.open_stream(self.open_timeout)
            self._inlet.time_correction(self.open_timeout)
        except (lsl.util.TimeoutError, lsl.util.LostError):
            self.lost = True
            raise EmgtfError(f"ground-truth LSL stream {describe(info)} did not answer within "
                             f"{self.open_timeout:g} s") from None

    def poll(self) -> None:
        if self.lost or self._inlet is None:
            return
        lsl = pylsl()
        try:
            markers, stamps = self._inlet.pull_chunk(timeout=0.0, max_samples=1024)
        except lsl.util.LostError:
            self.lost = True  # the replay ended; its presses are all here
            return
        for (text, *_), stamp in zip(markers, stamps):
            try:
                doc = json.loads(text)
            except (TypeError, ValueError):
                doc = None
            if not isinstance(doc, dict):
                self.ignored += 1
            elif doc.get("event") == "press" and isinstance(doc.get("key"), str):
                self.keys.append(doc["key"])
                self.times.append(stamp)
            elif doc.get("event") == "end":
                self.end_time = stamp
            else:
                self.ignored += 1

    @property
    def text(self) -> str:
        return "".join(self.keys)

    @property
    def press_times(self) -> np.ndarray:
        return np.asarray(self.times, dtype=np.float64)

    def close(self) -> None:
        """Leaves the stream (a replay waits for its consumers to leave before it ends)."""
        if self._inlet is not None:
            self._inlet.close_stream()
            self._inlet = None
