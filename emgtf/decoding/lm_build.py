"""Building a word-internal character n-gram model (``emgtf.decoding.lm.CharLM`` scores
with it): interpolated modified Kneser-Ney, the smoothing KenLM's own estimator uses, from word
counts, e.g. the English word frequencies that the ``wordfreq`` package ships, written as ARPA
(see ``scripts/build_lm.py``). The estimate is word-internal: ``<s>`` begins a word, ``</s>`` ends
it, and no n-gram crosses a word boundary.
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping

from emgtf.errors import EmgtfError

# Begin and end of word inside the estimator; the ARPA file spells them <s> and </s>.
_BOS, _EOS = "\x02", "\x03"
_LETTER_RUNS = re.compile(r"[a-z]+")


def letter_runs(word: str) -> list[str]:
    """The lower-case a-z runs of a word, accents stripped: "Don't" -> don, t; "café" -> cafe.

    A word-internal model over the letters sees "don't" as the words "don" and "t", exactly as the
    decoder does (the apostrophe ends a word), so the counts are split the same way.
    """
    folded = unicodedata.normalize("NFKD", word.lower())
    return _LETTER_RUNS.findall("".join(c for c in folded if not unicodedata.combining(c)))


def wordfreq_counts(num_words: int, lang: str = "en") -> Counter:
    """Counts of letter runs in the ``num_words`` most frequent words of ``wordfreq``.

    Frequencies become counts relative to the rarest word kept (which counts 1), as if they came
    from a corpus just large enough to hold every kept word once.
    """
    import wordfreq

    try:
        frequencies = wordfreq.get_frequency_dict(lang, wordlist="best")
    except (LookupError, ValueError) as e:
        raise EmgtfError(f"wordfreq has no word list for language {lang!r}") from e
    # get_frequency_dict is ordered by decreasing frequency.
    kept = list(frequencies.items())[:num_words]
    if not kept:
        raise EmgtfError(f"wordfreq returned no words for language {lang!r}")
    rarest = min(f for _, f in kept)
    counts: Counter = Counter()
    for word, frequency in kept:
        count = max(1, round(frequency / rarest))
        for run in letter_runs(word):
            counts[run] += count
    return counts


def _discounts(counts: Iterable[int]) -> tuple[float, float, float, float]:
    """Modified Kneser-Ney discounts (D0=0, D1, D2, D3+) from counts of counts (Chen & Goodman)."""
    n = Counter(c for c in counts if c <= 4)
    n1, n2, n3, n4 = n[1], n[2], n[3], n[4]
    if min(n1, n2, n3, n4) == 0:
        # Too little data for the estimate (tiny word lists): a common fixed choice.
        return 0.0, 0.5, 1.0, 1.5
    y = n1 / (n1 + 2 * n2)
    d = [1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3]
    # Each discount must stay below the count it discounts and above zero.
    d = [min(max(x, 0.05), k + 1 - 0.05) for k, x in enumerate(d)]
    return 0.0, d[0], d[1], d[2]


def estimate_word_internal(word_counts: Mapping[str, int], order: int) -> list[dict]:
    """Interpolated modified Kneser-Ney estimate of a word-internal character model.

    Returns, per order n = 1..order, a dict mapping each n-gram (a string whose characters are the
    tokens, begin/end of word as ``_BOS``/``_EOS``) to ``(log10 probability, log10 backoff)``, the
    backoff being None where the n-gram is never a context. Unigrams include ``<unk>`` (key
    ``"<unk>"``) and the begin-of-word token.

    As in KenLM's estimator: the highest order and the n-grams starting at the begin of a word use
    raw counts, the other lower orders continuation counts (the number of distinct tokens seen
    before them); interpolation weights become ARPA backoff weights, so the interpolated
    probabilities are exactly what a backoff query returns.
    """
    if order < 1:
        raise EmgtfError(f"order: must be at least 1, got {order}")
    counts: list[dict] = [{} for _ in range(order + 1)]  # counts[n]: n-gram -> (adjusted) count
    for word, count in word_counts.items():
        if not word or count <= 0:
            continue
        if _BOS in word or _EOS in word:
            raise EmgtfError(f"word {word!r} contains a control character")
        text = _BOS + word + _EOS
        for end in range(1, len(text)):  # every token after <s>, with its longest history
            gram = text[max(0, end - order + 1) : end + 1]
            table = counts[len(gram)]
            table[gram] = table.get(gram, 0) + count
    if not counts[1] and not counts[order]:
        raise EmgtfError("no words to estimate a language model from")

    # Continuation counts: how many distinct tokens precede an n-gram (never <s>-initial ones,
    # since nothing precedes <s>: those keep their raw counts).
    for n in range(order, 1, -1):
        lower = counts[n - 1]
        for gram in counts[n]:
            suffix = gram[1:]
            lower[suffix] = lower.get(suffix, 0) + 1

    vocabulary = [g for g in counts[1]] + ["<unk>"]
    model: list[dict] = [{}]
    lower_probs: dict = {}
    for n in range(1, order + 1):
        d = _discounts(counts[n].values())
        totals: dict = {}
        discounted: dict = {}
        for gram, count in counts[n].items():
            context = gram[:-1]
            totals[context] = totals.get(context, 0) + count
            discounted[context] = discounted.get(context, 0.0) + d[min(count, 3)]
        gammas = {context: discounted[context] / totals[context] for context in totals}
        probs: dict = {}
        if n == 1:
            uniform = gammas[""] / len(vocabulary)
            for gram, count in counts[1].items():
                probs[gram] = (count - d[min(count, 3)]) / totals[""] + uniform
            probs["<unk>"] = uniform
        else:
            for gram, count in counts[n].items():
                context = gram[:-1]
                probs[gram] = (count - d[min(count, 3)]) / totals[context] + gammas[
                    context
                ] * lower_probs[gram[1:]]
        # The interpolation weight of a context is its backoff weight, stored on the context.
        previous = model[n - 1]
        for context, gamma in gammas.items():
            if n > 1:
                if context not in previous:  # only <s>: never predicted, but a context
                    previous[context] = (-99.0, None)
                prob, _ = previous[context]
                previous[context] = (prob, math.log10(gamma) if gamma > 0 else -99.0)
        model.append({gram: (math.log10(p), None) for gram, p in probs.items()})
        lower_probs = probs
    model[1].setdefault(_BOS, (-99.0, None))
    return model[1:]


def _arpa_tokens(gram: str) -> str:
    if gram == "<unk>":
        return gram
    return " ".join(gram).replace(_BOS, "<s>").replace(_EOS, "</s>")


def write_arpa(model: list[dict], path: str | os.PathLike) -> None:
    """Writes the output of ``estimate_word_internal`` as an ARPA file."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("\\data\\\n")
        for n, grams in enumerate(model, start=1):
            f.write(f"ngram {n}={len(grams)}\n")
        for n, grams in enumerate(model, start=1):
            f.write(f"\n\\{n}-grams:\n")
            lines = []
            for gram, (prob, backoff) in grams.items():
                if backoff is None:
                    lines.append(f"{prob:.6f}\t{_arpa_tokens(gram)}\n")
                else:
                    lines.append(f"{prob:.6f}\t{_arpa_tokens(gram)}\t{backoff:.6f}\n")
            f.writelines(lines)
        f.write("\n\\end\\\n")


def build_word_internal_arpa(
    word_counts: Mapping[str, int], path: str | os.PathLike, order: int = 6
) -> dict:
    """Estimates a word-internal character model from word counts and writes it as ARPA.

    Returns the number of n-grams per order, e.g. ``{1: 29, 2: 700, ...}``.
    """
    model = estimate_word_internal(word_counts, order)
    write_arpa(model, path)
    return {n: len(grams) for n, grams in enumerate(model, start=1)}
