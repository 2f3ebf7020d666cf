"""Character error rates of decoded key sequences, as the emg2qwerty benchmark reports them.

Each prediction is aligned to its target with a minimal Levenshtein alignment (rapidfuzz), and the
edit operations are summed over a whole split before dividing, so long sessions weigh more than
short ones:

    CER = (insertions + deletions + substitutions) / target characters x 100
    IER, DER, SER = insertions, deletions, substitutions / target characters x 100

Convention (emg2qwerty's, which every published emg2qwerty table uses): the operations are
``Levenshtein.editops(prediction, target)``, those that turn the prediction into the target. So an
*insertion* is a character of the target that the prediction misses, a *deletion* a character of
the prediction that the target does not have, a *substitution* a target character predicted as
another one: the mirror image of the usual speech-recognition naming. Which of several minimal
alignments is counted is rapidfuzz's, the same as the current ``Levenshtein`` package's (the
python-Levenshtein 0.12.2 that the reference pinned breaks ties differently: same CER, but IER, DER
and SER can move by about a point).
Backspaces, shifts and the other special keys are characters like any other: both sides are key
sequences, not edited text.

Beside them, the **rendered-text CER** (the NeurIPS 2026 EEG/EMG Foundation Challenge, Track 4):
both sequences are first rendered, each backspace deleting the character before it (a backspace
with nothing before it does nothing), as a screen would show them, and the CER is taken between
the rendered texts, edits summed over the sessions and divided by the rendered targets' characters:

    rendered CER = sum Levenshtein(render(prediction), render(target)) / sum len(render(target)) x 100

A typo fixed with backspace scores 0 there (and counts in the CER, which scores the keys):
target keys ``cat`` ``⌫`` ``r`` render to ``car``. Only backspace edits; enter, shift and the
other keys render as themselves. docs/concepts/scoring.md has worked examples.

Named sets (``METRICS``): ``emg2qwerty`` (the default: every rate, per session and summed,
and per user with mean +/- std over users in the multi-user table) and ``track4`` (exactly the
track's: corpus-level CER, IER, DER, SER and rendered CER, edits summed over every session).

With no target characters at all (every target empty) the rates divide by 1 instead of 0, so they
stay finite: 0 when the predictions are empty too, else 100 per predicted character.
"""

from __future__ import annotations

from collections.abc import Iterable

from rapidfuzz.distance import Levenshtein

from emgtf.charset import BACKSPACE
from emgtf.errors import EmgtfError

# The rates every report gives, in percent, and the counts each comes from.
RATES = ("CER", "IER", "DER", "SER", "rendered_CER")
COUNTS = ("insertions", "deletions", "substitutions", "target_chars", "rendered_errors",
          "rendered_chars")
# Named metric sets: which rates a report gives and how they are pooled (module docstring).
TRACK4 = ("CER", "IER", "DER", "SER", "rendered_CER")
METRICS = {"emg2qwerty": RATES, "track4": TRACK4}

# editops(prediction, target) turns the prediction into the target, so its "insert" adds a target
# character the prediction missed: the reference's insertion.
_OPS = {"insert": "insertions", "delete": "deletions", "replace": "substitutions"}


def render(keys: str) -> str:
    """The text ``keys`` leaves on a screen: each backspace deletes the character before it (none
    at the start), every other key stays.

    >>> render("cat\u232br")
    'car'
    """
    out: list[str] = []
    for key in keys:
        if key == BACKSPACE:
            if out:
                out.pop()
        else:
            out.append(key)
    return "".join(out)


def check_metrics(name) -> str:
    """``name`` if it is one of ``METRICS``, else a one-line EmgtfError listing them."""
    if name not in METRICS:
        raise EmgtfError(f"metrics must be one of {', '.join(METRICS)}, got {name!r}")
    return name


def select(result: dict, metrics: str) -> dict:
    """The rates of ``result`` that metric set ``metrics`` reports."""
    return {rate: result[rate] for rate in METRICS[check_metrics(metrics)]}


class ErrorCounter:
    """Sums edit operations over many (prediction, target) pairs, e.g. the sessions of a split.

    >>> counter = ErrorCounter()
    >>> counter.update("helo", "hello")
    >>> counter.result()["CER"]
    20.0
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.insertions = 0
        self.deletions = 0
        self.substitutions = 0
        self.target_chars = 0
        self.rendered_errors = 0
        self.rendered_chars = 0

    def update(self, prediction: str, target: str) -> None:
        """Adds the edit operations turning ``prediction`` into ``target``."""
        if not isinstance(prediction, str) or not isinstance(target, str):
            raise EmgtfError(
                f"error rates compare strings, got prediction {type(prediction).__name__} "
                f"and target {type(target).__name__}"
            )
        for op in Levenshtein.editops(prediction, target):
            name = _OPS[op.tag]
            setattr(self, name, getattr(self, name) + 1)
        self.target_chars += len(target)
        rendered = render(target)
        self.rendered_errors += Levenshtein.distance(render(prediction), rendered)
        self.rendered_chars += len(rendered)

    def extend(self, predictions: Iterable[str], targets: Iterable[str]) -> None:
        """Adds pairs of predictions and targets; both lists must be of the same length."""
        if isinstance(predictions, str) or isinstance(targets, str):
            # A bare string would silently be compared character by character.
            raise EmgtfError("error rates take lists of strings, got a single string")
        predictions, targets = list(predictions), list(targets)
        if len(predictions) != len(targets):
            raise EmgtfError(
                f"error rates need one prediction per target, got {len(predictions)} predictions "
                f"and {len(targets)} targets"
            )
        for prediction, target in zip(predictions, targets):
            self.update(prediction, target)

    @property
    def errors(self) -> int:
        return self.insertions + self.deletions + self.substitutions

    def add_counts(self, counts: dict) -> None:
        """Adds the counts of another result (``COUNTS``), e.g. a saved session's."""
        for key in COUNTS:
            setattr(self, key, getattr(self, key) + int(counts[key]))

    def result(self) -> dict:
        """Rates in percent (``RATES``) and the raw counts they come from (``COUNTS``)."""
        denominator = max(1, self.target_chars)
        return {
            "CER": 100.0 * self.errors / denominator,
            "IER": 100.0 * self.insertions / denominator,
            "DER": 100.0 * self.deletions / denominator,
            "SER": 100.0 * self.substitutions / denominator,
            "rendered_CER": 100.0 * self.rendered_errors / max(1, self.rendered_chars),
            "insertions": self.insertions,
            "deletions": self.deletions,
            "substitutions": self.substitutions,
            "target_chars": self.target_chars,
            "rendered_errors": self.rendered_errors,
            "rendered_chars": self.rendered_chars,
        }


def error_rates(predictions: Iterable[str], targets: Iterable[str]) -> dict:
    """Error rates of predicted key sequences against their targets, summed over the lists.

    Returns "CER", "IER", "DER", "SER", "rendered_CER" in percent and the counts "insertions",
    "deletions", "substitutions", "target_chars", "rendered_errors", "rendered_chars" (see the
    module docstring for the conventions).
    """
    counter = ErrorCounter()
    counter.extend(predictions, targets)
    return counter.result()
