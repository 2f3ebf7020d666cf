"""The emg2qwerty character set: 98 keys plus the CTC blank.

The label order is fixed by Meta's pretrained checkpoints: a-z, A-Z, 0-9, the 32 ASCII punctuation
characters in ``string.punctuation`` order, then backspace, enter, space and shift. The CTC blank
is the last class.
"""

from __future__ import annotations

import functools
import string
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

BACKSPACE = "\u232b"  # ⌫
ENTER = "\u23ce"  # ⏎
SPACE = " "
SHIFT = "\u21e7"  # ⇧
PAD = -1  # the label that pads label sequences to one length (in batches and packed CTC targets)

# pynput key names of the keys in the charset; every other ``Key.*`` name is outside it.
_PYNPUT_KEYS = {
    "Key.backspace": BACKSPACE,
    "Key.enter": ENTER,
    "Key.space": SPACE,
    "Key.shift": SHIFT,
}

# Non-ASCII characters whose ASCII stand-in is unambiguous but that Unicode decomposition does not
# reach (typographic quotes and dashes, as produced by word processors and phone keyboards).
_TRANSLITERATIONS = {
    "\n": ENTER,
    "\r": ENTER,
    "\b": BACKSPACE,
    "\u2018": "'",  # left single quote
    "\u2019": "'",  # right single quote
    "\u201a": "'",  # low single quote
    "\u2032": "'",  # prime
    "\u201c": '"',  # left double quote
    "\u201d": '"',  # right double quote
    "\u201e": '"',  # low double quote
    "\u2033": '"',  # double prime
    "\u2014": "-",  # em dash
    "\u2013": "-",  # en dash
    "\u2012": "-",  # figure dash
    "\u2212": "-",  # minus sign
    "\u00a0": " ",  # no-break space
}


class CharacterSet:
    """Maps between text, pynput key names and integer labels.

    Use ``charset`` for the shared instance.
    """

    def __init__(self) -> None:
        keys = (
            string.ascii_lowercase
            + string.ascii_uppercase
            + string.digits
            + string.punctuation
            + BACKSPACE
            + ENTER
            + SPACE
            + SHIFT
        )
        self.chars: tuple[str, ...] = tuple(keys)
        self._label_of = {c: i for i, c in enumerate(self.chars)}

    @property
    def num_keys(self) -> int:
        """Number of key classes (98)."""
        return len(self.chars)

    @property
    def num_classes(self) -> int:
        """Number of output classes including the CTC blank (99)."""
        return len(self.chars) + 1

    @property
    def blank(self) -> int:
        """Label of the CTC blank (98): the last class."""
        return len(self.chars)

    def __contains__(self, char: str) -> bool:
        return char in self._label_of

    def _clean_char(self, char: str) -> str:
        if char in self._label_of:
            return char
        if char in _TRANSLITERATIONS:
            return _TRANSLITERATIONS[char]
        if char.isascii():
            return ""  # ASCII control characters such as tab are not keys
        decomposed = unicodedata.normalize("NFKD", char)
        ascii_only = "".join(c for c in decomposed if c.isascii() and not unicodedata.combining(c))
        # One ASCII character is an unambiguous transliteration (é -> e); none or several is not.
        return ascii_only if len(ascii_only) == 1 and ascii_only in self._label_of else ""

    def clean_str(self, text: str) -> str:
        """Normalises text to characters of the charset, dropping what has no key."""
        return "".join(self._clean_char(c) for c in text)

    def key_to_char(self, key: str) -> str | None:
        """The charset character of a pynput key name, or None for keys outside the charset."""
        if key in _PYNPUT_KEYS:
            return _PYNPUT_KEYS[key]
        if key.startswith("Key."):
            return None
        cleaned = self.clean_str(key)
        return cleaned if len(cleaned) == 1 else None

    def str_to_labels(self, text: str) -> np.ndarray:
        """Labels (int32) of the normalised text."""
        return np.asarray([self._label_of[c] for c in self.clean_str(text)], dtype=np.int32)

    def labels_to_str(self, labels: Iterable[int] | np.ndarray) -> str:
        """Text of key labels; raises ValueError for the blank or an out-of-range label."""
        out = []
        for label in np.asarray(labels, dtype=np.int64).reshape(-1).tolist():
            if not 0 <= label < self.num_keys:
                raise ValueError(
                    f"label {label} is not a key label (keys are 0..{self.num_keys - 1}, "
                    f"blank is {self.blank})"
                )
            out.append(self.chars[label])
        return "".join(out)

    def char_to_label(self, char: str) -> int:
        return self._label_of[char]

    def labels_of(self, chars: Sequence[str]) -> np.ndarray:
        """Labels of characters already in the charset."""
        return np.asarray([self._label_of[c] for c in chars], dtype=np.int32)


@functools.cache
def charset() -> CharacterSet:
    """The shared ``CharacterSet`` (99 classes, blank 98)."""
    return CharacterSet()


# The model's output width (keys + blank), for code that needs it as a constant (array shapes
# fixed at import); the count is the charset's, never typed.
NUM_CLASSES = charset().num_classes
