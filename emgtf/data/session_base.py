"""What a session of either form (an HDF5 file, ``emgtf.data.session.EMGSession``; a BIDS
session, ``emgtf.data.bids.BIDSSession``) shares: its ``GroundTruth`` and the methods
computed from its ``timestamps`` and ``keystrokes`` alone (``SessionBase``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from emgtf.charset import charset
from emgtf.errors import EmgtfError

__all__ = ["GroundTruth", "SessionBase"]


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """The keys pressed in a time window: ``text``, int32 ``labels`` and float64 press ``timestamps``
    (one per character; NaN where unknown).

    Two ground truths are equal when their keys are (``text`` and ``labels``; the press times are
    measurements and do not count), as Meta's ``LabelData`` compares; the hash follows the same
    keys, so a ground truth can be a set member or dict key. ``+`` joins two in order.
    """

    text: str
    labels: np.ndarray
    timestamps: np.ndarray

    def __post_init__(self):
        # Any integer sequence of labels, stored as the int32 array every reader expects.
        object.__setattr__(self, "labels", np.asarray(self.labels, dtype=np.int32).reshape(-1))
        object.__setattr__(self, "timestamps",
                           np.asarray(self.timestamps, dtype=np.float64).reshape(-1))

    @classmethod
    def from_text(cls, text: str, timestamps=None) -> GroundTruth:
        """The keys of ``text``, normalised to the charset (``\n`` is enter, ``\b`` backspace,
        curly quotes straight ones; characters without a key dropped)."""
        cs = charset()
        text = cs.clean_str(text)
        return cls(text, cs.labels_of(text), _times(timestamps, len(text)))

    @classmethod
    def from_labels(cls, labels, timestamps=None) -> GroundTruth:
        """The keys of charset ``labels``."""
        labels = np.asarray(labels, dtype=np.int32).reshape(-1)
        return cls(charset().labels_to_str(labels), labels, _times(timestamps, len(labels)))

    def __len__(self) -> int:
        return len(self.text)

    def __eq__(self, other) -> bool:
        if not isinstance(other, GroundTruth):
            return NotImplemented
        return self.text == other.text and np.array_equal(self.labels, other.labels)

    def __hash__(self) -> int:
        return hash((self.text, self.labels.tobytes()))

    def __add__(self, other: GroundTruth) -> GroundTruth:
        if not isinstance(other, GroundTruth):
            return NotImplemented
        return GroundTruth(self.text + other.text, np.concatenate([self.labels, other.labels]),
                           np.concatenate([self.timestamps, other.timestamps]))


def _times(timestamps, n: int) -> np.ndarray:
    if timestamps is None:
        return np.full(n, np.nan)
    times = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if len(times) != n:
        raise EmgtfError(f"ground truth: {len(times)} timestamps for {n} keys")
    return times


class SessionBase:
    """The methods both session forms share. A subclass has ``timestamps`` (float64 seconds, one
    per sample), ``keystrokes`` (``{"key", "start", "end"}`` dicts), ``time_range()``,
    ``__len__`` and ``close()``."""

    # --- context manager -------------------------------------------------------------------
    def __enter__(self) -> "SessionBase":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def index_range(self, start_t: float = -math.inf, end_t: float = math.inf) -> tuple[int, int]:
        """Sample indices ``[i0, i1)`` of the samples with ``start_t <= time <= end_t``."""
        t = self.timestamps
        return int(np.searchsorted(t, start_t, "left")), int(np.searchsorted(t, end_t, "right"))

    # --- labels ----------------------------------------------------------------------------
    def keys_outside(self) -> tuple[int, int]:
        """(keys pressed inside the recording's time range, keys pressed outside it)."""
        if not self.keystrokes or len(self) == 0:
            return 0, len(self.keystrokes)
        first, last = self.time_range()
        starts = np.asarray([k["start"] for k in self.keystrokes], np.float64)
        inside = int(np.count_nonzero((starts >= first) & (starts <= last)))
        return inside, len(starts) - inside

    def ground_truth(self, start_t: float = -math.inf, end_t: float = math.inf) -> GroundTruth:
        """The keys pressed with ``start_t <= press time <= end_t``, mapped through the charset
        (keys outside it are dropped)."""
        cs = charset()
        # A few dozen distinct keys among thousands of keystrokes: each is mapped once.
        char_of = {key: cs.key_to_char(key) for key in {k["key"] for k in self.keystrokes}}
        chars, times = [], []
        for k in sorted(self.keystrokes, key=lambda k: k["start"]):
            if start_t <= k["start"] <= end_t:
                c = char_of[k["key"]]
                if c is not None:
                    chars.append(c)
                    times.append(k["start"])
        return GroundTruth(
            text="".join(chars),
            labels=cs.labels_of(chars),
            timestamps=np.asarray(times, dtype=np.float64),
        )
