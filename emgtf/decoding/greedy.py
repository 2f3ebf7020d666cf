"""Greedy CTC decoding: the most likely class per frame, repeats collapsed, blanks dropped."""

from __future__ import annotations

import numpy as np

from emgtf.charset import charset
from emgtf.decoding.onsets import Decoding, path_onsets
from emgtf.errors import EmgtfError


def check_batch(log_probs, lengths) -> tuple[np.ndarray, np.ndarray]:
    log_probs = np.asarray(log_probs)
    lengths = np.asarray(lengths)
    num_classes = charset().num_classes
    if log_probs.ndim != 3 or log_probs.shape[-1] != num_classes:
        raise EmgtfError(
            f"log_probs: expected shape (batch, frames, {num_classes}), got {log_probs.shape}"
        )
    if lengths.shape != (log_probs.shape[0],):
        raise EmgtfError(
            f"lengths: expected shape ({log_probs.shape[0]},) for a batch of "
            f"{log_probs.shape[0]}, got {lengths.shape}"
        )
    if lengths.size and (lengths.min() < 0 or lengths.max() > log_probs.shape[1]):
        raise EmgtfError(
            f"lengths: must lie in 0..{log_probs.shape[1]} (the frames given), got "
            f"{lengths.min()}..{lengths.max()}"
        )
    return log_probs, lengths.astype(np.int64)


def ctc_greedy(log_probs, lengths, *, onsets: bool = False) -> list:
    """Greedy CTC decoding of a batch.

    Args:
        log_probs: (batch, frames, 99) per-frame (log-)probabilities; only the argmax matters.
        lengths: (batch,) number of valid frames of each element.
        onsets: also return each key's onset frame (``emgtf.decoding.onsets``).
    Returns:
        The key sequence of each element: argmax per frame, repeats collapsed, blanks dropped;
        with ``onsets``, a ``Decoding`` (keys, onset frames) each.
    """
    log_probs, lengths = check_batch(log_probs, lengths)
    cs = charset()
    best = log_probs.argmax(axis=-1)
    out = []
    for labels, length in zip(best, lengths):
        labels = labels[:length]
        starts = path_onsets(labels, cs.blank)
        keys = cs.labels_to_str(labels[starts])
        out.append(Decoding(keys, starts) if onsets else keys)
    return out


class GreedyDecoder:
    """``ctc_greedy`` behind the common decoder interface."""

    def decode_batch(self, log_probs, lengths, *, onsets: bool = False) -> list:
        """Keys of each element; with ``onsets``, (keys, onset frames) each."""
        return ctc_greedy(log_probs, lengths, onsets=onsets)

    def start(self, max_pending_keys: int | None = None) -> "GreedyState":
        """Greedy decoding fed chunk by chunk (see ``GreedyState``); every key commits at
        once, so ``max_pending_keys`` (the beam search's) has nothing to bound."""
        return GreedyState()

    def __repr__(self) -> str:
        return "GreedyDecoder()"


class GreedyState:
    """Greedy decoding carried across chunks of emissions: every key is committed as soon as its
    frame arrives (a repeat across a chunk boundary is collapsed, as in one pass)."""

    def __init__(self):
        self._last = -1  # the previous frame's label (-1: none yet)
        # Text, not labels: a push converts only its new keys (a stream's CPU per chunk stays flat).
        self._text = ""
        self._onsets: list[int] = []
        self.frames = 0  # frames consumed so far

    @property
    def committed_onsets(self) -> np.ndarray:
        """The onset frame of each committed key, counted from the stream's first frame."""
        return np.asarray(self._onsets, dtype=np.int64)

    @property
    def committed(self) -> str:
        return self._text

    def advance(self, log_probs) -> None:
        """Consumes (frames, 99) log-probabilities."""
        log_probs = np.asarray(log_probs)
        cs = charset()
        if log_probs.ndim != 2 or log_probs.shape[1] != cs.num_classes:
            raise EmgtfError(f"log_probs: expected shape (frames, {cs.num_classes}), got {log_probs.shape}")
        if not len(log_probs):
            return
        labels = log_probs.argmax(axis=-1)
        # The previous chunk's last frame in front: a repeat across the boundary is no onset.
        starts = path_onsets(np.concatenate([[self._last], labels]), cs.blank) - 1
        starts = starts[starts >= 0]
        self._text += cs.labels_to_str(labels[starts])
        self._onsets += (starts + self.frames).tolist()
        self._last = int(labels[-1])
        self.frames += len(labels)

    def best(self) -> tuple[str, str]:
        """(committed keys, partial keys): greedy has no partial hypothesis."""
        return self.committed, ""

    def finish(self) -> str:
        return self.committed
