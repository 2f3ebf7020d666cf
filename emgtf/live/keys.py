"""Decoded keys as events: what a typing interface, LabRecorder or another program consumes.

Each update of the decoder (committed keys, then its partial guess) becomes the changes from
what was shown before, in order:

- ``{"event": "retract", "index": i, "key": k}``: key ``i`` (the last shown) is withdrawn: the
  beam search revised its guess (greedy decoding never retracts);
- ``{"event": "key", "index": i, "key": k, "final": f}``: key ``i`` is now ``k``; ``final``: it
  is committed and will never change (greedy: always);
- ``{"event": "commit", "index": i, "key": k}``: key ``i``, shown before as partial, is final now.

So every committed key gets one marker that says so (a ``key`` with ``final`` or a ``commit``).
Keys are the charset's characters (``⏎`` Enter, ``⌫`` Backspace...). The LSL marker stream
(``KeyOutlet``) sends each event as a JSON string stamped with the LSL time of the last
sample of the chunk that completed it; the JSON lines (``JsonLines``) add that ``time`` and
``shown``, the local LSL clock when the event was published.
"""

from __future__ import annotations

import json
import sys

from emgtf.live.lsl import marker, marker_info, pylsl


class KeyTracker:
    """The shown keys; ``update(committed, partial)`` -> the events that lead there."""

    def __init__(self):
        self.shown = ""
        self.committed = 0

    def update(self, committed: str, partial: str) -> list[dict]:
        text = committed + partial
        common = 0
        for a, b in zip(self.shown, text):
            if a != b:
                break
            common += 1
        events = [{"event": "retract", "index": i, "key": self.shown[i]}
                  for i in range(len(self.shown) - 1, common - 1, -1)]
        events += [{"event": "commit", "index": i, "key": text[i]}
                   for i in range(self.committed, min(len(committed), common))]
        events += [{"event": "key", "index": i, "key": text[i], "final": i < len(committed)}
                   for i in range(common, len(text))]
        self.shown, self.committed = text, max(self.committed, len(committed))
        return events


class KeyOutlet:
    """An LSL marker outlet of key events."""

    def __init__(self, name: str, source_id: str):
        lsl = pylsl()
        self.name = name
        self._outlet = lsl.StreamOutlet(marker_info(name, source_id, "decoded keys (emgtf.live.keys)"))

    def __call__(self, events: list[dict], time: float, shown: float) -> None:
        for event in events:
            self._outlet.push_sample([marker(**event)], time)


class JsonLines:
    """Key events as JSON lines on a text stream (stdout)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def __call__(self, events: list[dict], time: float, shown: float) -> None:
        for event in events:
            print(json.dumps({**event, "time": round(time, 6), "shown": round(shown, 6)}, ensure_ascii=False),
                  file=self.stream)
        self.stream.flush()
