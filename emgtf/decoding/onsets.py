"""Key onsets: the emission frame where each decoded key starts.

A CTC path gives one class per frame; collapsing repeats and dropping blanks turns it into keys.
A key's **onset** is the first frame of the run of frames that emitted it (the frame where the path
moves to that key from blank or from another key), as Meta's emg2qwerty decoders report them. A
key held over several frames has the onset of its first; the same key twice (``a - a``) has two
onsets. Greedy decoding reads them off its argmax path. The beam search records, for each prefix,
the frame of the extension that added its last key; when another path reaches a prefix already in
the beam (CTC sums their probabilities), the onset moves to that path's frame if it brings more
probability than the prefix had, so a decoding's onsets are those of its dominant path (with a
beam of 1, the surviving path's, as Meta's test cases check). Streaming decoders count frames from
the start of the stream, so their onsets are the offline decoders' on the same emissions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Decoding", "path_onsets"]


class Decoding(NamedTuple):
    """Decoded ``keys`` and the ``onsets`` (int64 emission frames, one per key)."""

    keys: str
    onsets: np.ndarray


def path_onsets(path: np.ndarray, blank: int) -> np.ndarray:
    """Frames of the CTC ``path`` (one class per frame) where a key starts: not blank, and not the
    previous frame's class."""
    path = np.asarray(path)
    start = path != blank
    start[1:] &= path[1:] != path[:-1]
    return np.flatnonzero(start).astype(np.int64)
