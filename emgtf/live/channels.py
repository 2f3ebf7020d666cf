"""Which channels of a stream are the two bands of 16 electrodes.

A stream of exactly 32 channels is taken as emgtf's layout: left band channels 1..16 then right
band 1..16 (a stream labelled otherwise still is; its labels are only shown). Any other stream
needs a map, ``channels=``: 32 stream channels in that order, as 0-based indices, ranges
``a-b`` (inclusive) or channel labels from the stream's description, comma-separated, e.g.
``channels=0-15,16-31`` or ``channels=8-23,40-55`` for a bridge that also sends other sensors.
"""

from __future__ import annotations

import numpy as np

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.errors import EmgtfError

WIDTH = NUM_BANDS * NUM_CHANNELS


class ChannelMap:
    """Stream channel indices of the 32 EMG channels, left band first."""

    def __init__(self, indices):
        self.indices = np.asarray(indices, dtype=np.int64)
        self.identity = bool(np.array_equal(self.indices, np.arange(WIDTH)))

    @classmethod
    def parse(cls, spec: str | None, channel_count: int, labels=None, *, stream: str = "the stream") -> "ChannelMap":
        """The map ``spec`` gives (None: a 32-channel stream as it is) for a stream of
        ``channel_count`` channels labelled ``labels`` (None or a list with None entries)."""
        if spec is None:
            if channel_count != WIDTH:
                raise EmgtfError(
                    f"{stream} has {channel_count} channels, not {WIDTH} (two bands of {NUM_CHANNELS}); "
                    f"give channels= with the {WIDTH} to decode, e.g. channels=0-15,16-31"
                )
            return cls(range(WIDTH))
        by_label = {label: i for i, label in enumerate(labels or []) if label}
        indices = []
        for item in (part.strip() for part in str(spec).split(",")):
            if not item:
                raise EmgtfError(f"channels={spec}: an empty item")
            if item in by_label:
                indices.append(by_label[item])
                continue
            first, sep, last = item.partition("-")
            try:
                lo, hi = int(first), int(last) if sep else int(first)
            except ValueError:
                raise EmgtfError(f"channels={spec}: '{item}' is neither an index, a range a-b nor a channel "
                                 f"label of {stream}") from None
            if hi < lo:
                raise EmgtfError(f"channels={spec}: the range '{item}' runs backwards")
            indices.extend(range(lo, hi + 1))
        if len(indices) != WIDTH:
            raise EmgtfError(f"channels={spec} names {len(indices)} channels; it must name {WIDTH} "
                             f"(left band 1..{NUM_CHANNELS}, then right band 1..{NUM_CHANNELS})")
        bad = [i for i in indices if not 0 <= i < channel_count]
        if bad:
            raise EmgtfError(f"channels={spec}: channel {bad[0]} is not among the {channel_count} of {stream} "
                             f"(0..{channel_count - 1})")
        if len(set(indices)) != WIDTH:
            raise EmgtfError(f"channels={spec} names a channel twice")
        return cls(indices)

    def take(self, samples: np.ndarray) -> np.ndarray:
        """(n, stream channels) -> (n, 2, 16) float32."""
        picked = samples if self.identity else samples[:, self.indices]
        return np.ascontiguousarray(picked, dtype=np.float32).reshape(len(samples), NUM_BANDS, NUM_CHANNELS)
