"""Which keys a decoder gets wrong, and how: substitutions, insertions and deletions per key.

Each (prediction, target) pair of key strings is aligned with
``rapidfuzz.distance.Levenshtein.editops(prediction, target)``, the operations that turn the
prediction into the target, and the operations are named as the emg2qwerty reference names them:

- ``replace``: a *substitution*; the predicted key at ``src_pos`` stands where the target key at
  ``dest_pos`` belongs (confusion matrix row = target key, column = predicted key);
- ``insert``: an *insertion*; the target key at ``dest_pos`` has to be inserted, i.e. the
  prediction missed a key that was typed;
- ``delete``: a *deletion*; the predicted key at ``src_pos`` has to be deleted, i.e. the
  prediction has a key that was not typed.

(``emgtf.metrics`` names the last two the other way round, as speech recognition does; the sums
are the same, the names swap.) Counts are summed over all pairs, like the error rates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from rapidfuzz.distance import Levenshtein

from emgtf.charset import charset
from emgtf.errors import EmgtfError


@dataclass
class EditAnalysis:
    """Edit operations per key, in charset label order (98 keys).

    ``substitutions[t, p]``: how often target key ``t`` was decoded as key ``p``;
    ``insertions[k]``: target key ``k`` missed; ``deletions[k]``: key ``k`` predicted but not
    typed; ``target_counts`` / ``prediction_counts``: occurrences of each key in the targets and
    predictions; ``pairs``: the (prediction, target) pairs counted. All int64.
    """

    substitutions: np.ndarray
    insertions: np.ndarray
    deletions: np.ndarray
    target_counts: np.ndarray
    prediction_counts: np.ndarray
    pairs: int

    @property
    def keys(self) -> tuple[str, ...]:
        return charset().chars

    @property
    def target_chars(self) -> int:
        return int(self.target_counts.sum())

    def totals(self) -> dict:
        """``substitutions``, ``insertions``, ``deletions``, ``errors``, ``target_chars`` and
        ``CER`` (errors per target character, %)."""
        s, i, d = int(self.substitutions.sum()), int(self.insertions.sum()), int(self.deletions.sum())
        chars = self.target_chars
        return {"substitutions": s, "insertions": i, "deletions": d, "errors": s + i + d,
                "target_chars": chars, "CER": 100.0 * (s + i + d) / max(1, chars)}

    def top_substitutions(self, n: int = 20) -> list[tuple[str, str, int]]:
        """The ``n`` most frequent (target key, predicted key, count), most frequent first
        (ties in label order)."""
        flat = self.substitutions.ravel()
        nonzero = np.flatnonzero(flat)
        ranked = nonzero[np.lexsort((nonzero, -flat[nonzero]))][:n]
        size = self.substitutions.shape[1]
        return [(self.keys[i // size], self.keys[i % size], int(flat[i])) for i in ranked]

    @property
    def insertion_rate(self) -> np.ndarray:
        """Per key: insertions / occurrences in the targets (the share of typed ``k`` that the
        prediction missed); NaN for keys never typed."""
        return _ratio(self.insertions, self.target_counts)

    @property
    def deletion_rate(self) -> np.ndarray:
        """Per key: deletions / occurrences in the predictions (the share of predicted ``k`` that
        were not typed); NaN for keys never predicted."""
        return _ratio(self.deletions, self.prediction_counts)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _labels(text: str, what: str, index: int) -> np.ndarray:
    cs = charset()
    for c in text:
        if c not in cs:
            raise EmgtfError(f"{what} {index}: {c!r} is not a key of the charset")
    return cs.labels_of(text)


def analyze_edits(predictions: Iterable[str], targets: Iterable[str]) -> EditAnalysis:
    """The ``EditAnalysis`` of decoded key strings against their ground-truth key strings
    (one pair per session or window, both in charset characters)."""
    if isinstance(predictions, str) or isinstance(targets, str):
        raise EmgtfError("an error analysis takes lists of strings, got a single string")
    predictions, targets = list(predictions), list(targets)
    if len(predictions) != len(targets):
        raise EmgtfError(f"an error analysis needs one prediction per target, got {len(predictions)} "
                         f"predictions and {len(targets)} targets")
    n = charset().num_keys
    subs = np.zeros((n, n), np.int64)
    ins, dels = np.zeros(n, np.int64), np.zeros(n, np.int64)
    target_counts, prediction_counts = np.zeros(n, np.int64), np.zeros(n, np.int64)
    for i, (prediction, target) in enumerate(zip(predictions, targets)):
        if not isinstance(prediction, str) or not isinstance(target, str):
            raise EmgtfError(f"pair {i}: predictions and targets must be strings")
        p, t = _labels(prediction, "prediction", i), _labels(target, "target", i)
        np.add.at(prediction_counts, p, 1)
        np.add.at(target_counts, t, 1)
        for op in Levenshtein.editops(prediction, target):
            if op.tag == "replace":
                subs[t[op.dest_pos], p[op.src_pos]] += 1
            elif op.tag == "insert":
                ins[t[op.dest_pos]] += 1
            else:  # "delete"
                dels[p[op.src_pos]] += 1
    return EditAnalysis(subs, ins, dels, target_counts, prediction_counts, len(predictions))


def report_pairs(report: Mapping, source="the evaluation report") -> tuple[list[str], list[str]]:
    """(predictions, targets) of the sessions of an ``emgtf.evaluate`` JSON report (parsed)."""
    sessions = report.get("sessions")
    if not isinstance(sessions, list) or not sessions:
        raise EmgtfError(f"{source}: no 'sessions' list (not an emgtf evaluation report)")
    predictions, targets = [], []
    for i, s in enumerate(sessions):
        if not isinstance(s, Mapping) or not isinstance(s.get("prediction"), str) \
                or not isinstance(s.get("target"), str):
            raise EmgtfError(f"{source}: session {i} has no 'prediction' and 'target' strings "
                             "(written by an older emgtf.evaluate? evaluate again)")
        predictions.append(s["prediction"])
        targets.append(s["target"])
    return predictions, targets
