"""Word-internal character n-gram language models: scoring typed keys with KenLM.

The emg2qwerty reference decodes with a character 6-gram KenLM model whose "sentences" are single
words: ``<s>`` means begin of word, ``</s>`` end of word, and n-grams never cross a word boundary.
``CharLM`` scores *typed key sequences* against such a model:

- a character in the model's vocabulary extends the current word;
- any other key (space, enter, shift, capitals, punctuation or digits the model lacks) ends the
  word: it scores ``</s>`` after the word, or the unigram ``<unk>`` where no word is open;
- backspace deletes the previous character: the model's state and score return to what they were
  before that character, so "thx⌫e" scores exactly like "the".

That is the reference's behaviour. With ``fold_case=True`` capitals the model lacks are scored as
their lower-case letters and shift is skipped (no score, no change of state), so "⇧Hello" scores
as the word "hello".

KenLM gives log10 probabilities; everything here is converted to natural logarithms, the unit of
the acoustic model's log-probabilities.

``emgtf.decoding.lm_build.build_word_internal_arpa`` estimates such a model.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from emgtf.charset import BACKSPACE, SHIFT, charset
from emgtf.errors import EmgtfError
from emgtf.paths import cache_dir

DEFAULT_LM_NAME = "wordfreq-en-char-6gram"
LN10 = math.log(10.0)

# Column codes of keys that are not scored as tokens (see CharLM.label_columns).
DELETE = -1
TRANSPARENT = -2


def default_lm_path(name: str = DEFAULT_LM_NAME) -> Path:
    """Where ``scripts/build_lm.py`` writes the default LM: ``cache_dir()/lm/<name>.arpa``."""
    return cache_dir() / "lm" / f"{name}.arpa"


def resolve_lm_path(path: str | os.PathLike | None) -> Path | None:
    """The LM file a config names: None for none, "default" for ``default_lm_path``.

    Raises EmgtfError naming the file when it does not exist.
    """
    if path is None:
        return None
    if str(path) == "default":
        resolved = default_lm_path()
        if not resolved.is_file():
            raise EmgtfError(
                f"{resolved}: default language model not found; build it with "
                f"`python scripts/build_lm.py` (offline, seconds)"
            )
        return resolved
    from emgtf.fetch.published import resolve_path  # a published name (meta/lm): its downloaded file

    resolved = resolve_path(path)
    if not resolved.is_file():
        raise EmgtfError(f"{resolved}: language model file not found")
    return resolved


class CharLM:
    """A KenLM character model (ARPA or binary) scoring typed keys word-internally.

    By default keys score as in the reference decoder: a key outside the model's vocabulary
    (capitals and shift included) ends the open word with ``</s>``, or scores the unigram
    ``<unk>`` when no word is open. With ``fold_case`` capitals score as their lower-case
    letters and shift is skipped, so "The" and "the" are the same word to the LM.

    States are interned as integer ids and every (state, token) transition is computed once and
    kept in two tables, so a beam search pays one numpy gather per frame instead of thousands of
    KenLM calls. ``bos`` is the id of the begin-of-word state.
    """

    # Tables of visited states are dropped between utterances once they hold this many states
    # (about 30 bytes per state and token: a few hundred MB at most).
    MAX_STATES = 400_000

    def __init__(self, path: str | os.PathLike, *, fold_case: bool = False):
        import kenlm  # optional dependency: only LM decoding needs it

        path = Path(path)
        if not path.is_file():
            raise EmgtfError(f"{path}: language model file not found")
        config = kenlm.Config()
        config.show_progress = False
        config.arpa_complain = kenlm.ARPALoadComplain.NONE
        try:
            self._model = kenlm.Model(str(path), config)
        except (OSError, RuntimeError) as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise EmgtfError(f"{path}: not a KenLM ARPA or binary model ({first_line})") from e
        self._kenlm = kenlm
        self.path = path
        self.order = int(self._model.order)
        self.fold_case = bool(fold_case)

        # Column 0 is the word boundary; the others are the model's tokens that some key types.
        cs = charset()
        tokens: list[str | None] = [None]
        columns = np.zeros(cs.num_keys, dtype=np.int64)
        for label, char in enumerate(cs.chars):
            if char == BACKSPACE:
                columns[label] = DELETE
                continue
            if char == SHIFT and self.fold_case:
                columns[label] = TRANSPARENT
                continue
            token = self._token_of(char)
            if token is None:
                columns[label] = 0
                continue
            if token not in tokens:
                tokens.append(token)
            columns[label] = tokens.index(token)
        self.tokens = tuple(tokens)
        self.label_columns = columns  # (98,) column of each key label, or DELETE / TRANSPARENT
        self.vocabulary = frozenset(t for t in tokens if t is not None)
        self.unk_score = self._model.score("<unk>", bos=False, eos=False) * LN10
        self.reset()

    def _token_of(self, char: str) -> str | None:
        if char in self._model:
            return char
        lower = char.lower()
        if self.fold_case and lower != char and lower in self._model:
            return lower
        return None

    def reset(self) -> None:
        """Forgets the cached states and transitions (they are only a cache)."""
        begin = self._kenlm.State()
        self._model.BeginSentenceWrite(begin)
        self._states: list = []
        self._state_ids: dict = {}
        capacity = 1024
        self._scores = np.full((capacity, len(self.tokens)), np.nan)
        self._next = np.zeros((capacity, len(self.tokens)), dtype=np.int64)
        self.bos = self._intern(begin)

    def maybe_reset(self) -> None:
        """Resets the caches when they grew past MAX_STATES (call between utterances)."""
        if len(self._states) > self.MAX_STATES:
            self.reset()

    def _intern(self, state) -> int:
        sid = self._state_ids.get(state)
        if sid is None:
            sid = len(self._states)
            self._states.append(state)
            self._state_ids[state] = sid
            if sid >= len(self._scores):
                grow = len(self._scores)
                self._scores = np.concatenate([self._scores, np.full_like(self._scores, np.nan)])
                self._next = np.concatenate([self._next, np.zeros_like(self._next)])
                assert len(self._scores) == 2 * grow
        return sid

    def _fill(self, sid: int, column: int) -> None:
        token = self.tokens[column]
        if token is None:
            if sid == self.bos:  # a boundary with no word open: the unigram <unk>
                score, nxt = self.unk_score, self.bos
            else:  # end the open word
                out = self._kenlm.State()
                score = self._model.BaseScore(self._states[sid], "</s>", out) * LN10
                nxt = self.bos
        else:
            out = self._kenlm.State()
            score = self._model.BaseScore(self._states[sid], token, out) * LN10
            nxt = self._intern(out)
        self._scores[sid, column] = score
        self._next[sid, column] = nxt

    def transitions(self, sids: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Natural-log scores and next state ids of every state in ``sids`` x token ``columns``.

        ``columns`` are indices into ``tokens`` (not DELETE / TRANSPARENT); both outputs have
        shape (len(sids), len(columns)).
        """
        sids = np.asarray(sids, dtype=np.int64)
        columns = np.asarray(columns, dtype=np.int64)
        scores = self._scores[sids[:, None], columns[None, :]]
        missing = np.isnan(scores)
        if missing.any():
            for row, col in zip(*np.nonzero(missing)):
                sid, column = int(sids[row]), int(columns[col])
                if np.isnan(self._scores[sid, column]):  # states repeat within a beam
                    self._fill(sid, column)
            scores = self._scores[sids[:, None], columns[None, :]]
        return scores, self._next[sids[:, None], columns[None, :]]

    def end_score(self, sid: int) -> float:
        """Natural-log probability of ending the text in state ``sid`` (``</s>`` if a word is
        open, else nothing)."""
        if sid == self.bos:
            return 0.0
        return float(self.transitions(np.array([sid]), np.array([0]))[0][0, 0])

    def score_keys(self, keys: str, *, finish: bool = True) -> float:
        """Natural-log LM probability of the text a key sequence types (backspaces applied).

        With ``finish`` the open word, if any, is ended with ``</s>``.
        """
        cs = charset()
        stack: list[tuple[int, float]] = []  # (state after the character, its score)
        for char in keys:
            column = int(self.label_columns[cs.char_to_label(char)])
            if column == DELETE:
                if stack:
                    stack.pop()
            elif column != TRANSPARENT:
                sid = stack[-1][0] if stack else self.bos
                scores, nxt = self.transitions(np.array([sid]), np.array([column]))
                stack.append((int(nxt[0, 0]), float(scores[0, 0])))
        total = sum(score for _, score in stack)
        if finish:
            total += self.end_score(stack[-1][0] if stack else self.bos)
        return total
