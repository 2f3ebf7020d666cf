"""Prompt texts: English words and sentences drawn from a word-frequency list.

The real prompts are English words and sentences, so a decoder trained on them learns English
letter statistics as well as muscle patterns. Drawing words by their frequency (the ``wordfreq``
package ships its lists, no network needed) gives the same statistics: common short words, the
right letter and digraph frequencies, apostrophes ("don't"), and a little punctuation and digits.
"""

from __future__ import annotations

import functools
import re

import numpy as np

VOCABULARY_SIZE = 20_000
_WORD = re.compile(r"[a-z]+('[a-z]+)?")


@functools.cache
def vocabulary(size: int = VOCABULARY_SIZE) -> tuple[tuple[str, ...], np.ndarray]:
    """The ``size`` most frequent plain English words and their sampling probabilities."""
    import wordfreq  # imported here: the rest of emgtf must not pay for its word lists

    words = tuple(w for w in wordfreq.top_n_list("en", size) if _WORD.fullmatch(w))
    freqs = np.array([wordfreq.word_frequency(w, "en") for w in words], dtype=np.float64)
    return words, freqs / freqs.sum()


def _number(rng: np.random.Generator) -> str:
    if rng.random() < 0.4:
        return str(int(rng.integers(1900, 2030)))  # years are the most common numbers in text
    return str(int(rng.integers(0, 10 ** int(rng.integers(1, 4)))))


def _words(rng: np.random.Generator, n: int) -> list[str]:
    words, p = vocabulary()
    return [words[i] for i in rng.choice(len(words), size=n, p=p)]


def sentence(rng: np.random.Generator) -> str:
    """A sentence: capitalised, with commas, the odd number, quote or hyphen, and end punctuation."""
    out = []
    for w in _words(rng, int(min(4 + rng.poisson(5), 16))):
        if rng.random() < 0.03:
            w = _number(rng)
        if w == "i" or w.startswith("i'"):
            w = "I" + w[1:]
        elif rng.random() < 0.03:
            w = w.capitalize()  # names
        r = rng.random()
        if r < 0.006:
            w = f'"{w}"'
        elif r < 0.010:
            w = f"({w})"
        out.append(w)
        if rng.random() < 0.06:
            out[-1] += "," if rng.random() < 0.85 else str(rng.choice([";", ":"]))
        elif rng.random() < 0.01:
            out[-1] += "-" + _words(rng, 1)[0]
    out[0] = out[0][:1].upper() + out[0][1:]
    out[-1] = out[-1].rstrip(",;:") + str(rng.choice([".", "?", "!"], p=[0.82, 0.12, 0.06]))
    return " ".join(out)


def word_list(rng: np.random.Generator, most: int = 6) -> str:
    """A few (2 to ``most``) unrelated lower-case words, the other kind of real prompt."""
    return " ".join(_words(rng, int(rng.integers(min(2, most), most + 1))))


def prompt(rng: np.random.Generator) -> str:
    """One prompt: a sentence (70 %) or a word list."""
    return sentence(rng) if rng.random() < 0.7 else word_list(rng)
