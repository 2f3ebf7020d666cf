"""CTC prefix beam search, optionally fused with a word-internal character LM.

The probability of each prefix is kept separately for paths ending in blank and in a key, so "aa"
and "a" stay distinct. Fused with ``emgtf.decoding.lm.CharLM``, it reproduces the emg2qwerty
reference decoder: beam 50, at most 10 labels expanded per frame (the most probable at that frame,
blank included), LM weight 2.0, insertion bonus 2.0, backspace undoing the LM score of the
character it deletes, ``</s>`` scored for a word still open at the end.


    ln P_ctc(prefix) + (lm_weight / ln 10) * ln P_lm(text) + insertion_bonus * (characters kept)

``lm_weight`` keeps the reference's convention (a weight on KenLM's log10 probabilities), so
``lm_weight=2.0`` means what it means there. As in the reference, the insertion bonus is paid only
with an LM (it offsets the LM's cost per character), a backspace takes back the bonus and LM score
of the character it deletes, and shift, which the LM ignores, gets neither.

Speed. Every frame is handled with numpy over the whole beam (no per-frame sort: top labels come
from one ``argpartition`` over all frames, the new beam from ``argpartition``), LM transitions are
cached per (LM state, token), and frames where the blank is almost certain are skipped in bulk:
when p(blank) > ``blank_skip_threshold`` (default 0.999) at a frame, every prefix is carried
through the blank only (its total probability times p(blank)), dropping the paths that emit or
repeat a key there. Each of those paths carries less than 1 - threshold of its prefix's
probability at that frame, and a run of such frames costs one vector operation. The result
differs from the exact search only when such a path would have won; ``blank_skip_threshold=None``
gives the exact search.
"""

from __future__ import annotations

import math

import numpy as np

from emgtf.charset import NUM_CLASSES, charset
from emgtf.decoding.greedy import check_batch
from emgtf.decoding.lm import DELETE, LN10, TRANSPARENT, CharLM, resolve_lm_path
from emgtf.decoding.onsets import Decoding
from emgtf.errors import EmgtfError

_NEG = -np.inf
# Backspaces in a row that the LM's undo history can take back: far more than anyone types
# (a word is ~5 keys; deleting a whole sentence key by key is ~100).
DEFAULT_LM_UNDO_KEYS = 100
# "Last label" of the empty prefix: one past the last class, an index whose log-probability is
# always -inf (the frame arrays below have a column for it).
_ROOT = NUM_CLASSES


class BeamSearchDecoder:
    """CTC prefix beam search with optional word-internal character LM fusion.

    Args:
        beam_size: prefixes kept after each frame.
        max_labels_per_step: only this many most probable labels (blank included) are expanded
            at each frame (<= 0: all 99).
        lm_path: a KenLM ARPA or binary file, "default" for ``emgtf.decoding.lm.default_lm_path``,
            or None for no LM.
        lm_weight: weight on the LM's log10 probabilities (the reference's convention).
        insertion_bonus: added (natural log) per character the LM scores.
        blank_skip_threshold: frames with p(blank) above it are carried through blank only (see
            the module docstring); None for the exact search.
        lm_fold_case: False (the reference): capitals and shift end the LM's word; True:
            capitals score as lower-case letters and shift is skipped (see ``CharLM``).
        lm: an already loaded ``CharLM`` instead of ``lm_path``.
        lm_undo_keys: with an LM, how many of its latest scored keys each prefix can take back
            with backspace (its undo history holds between this many and twice as many). A
            backspace beyond them finds no history and scores from the start of a word; the bound
            keeps a long stream's memory per prefix flat.
    """

    def __init__(
        self,
        beam_size: int = 50,
        max_labels_per_step: int = 10,
        lm_path=None,
        lm_weight: float = 2.0,
        insertion_bonus: float = 2.0,
        blank_skip_threshold: float | None = 0.999,
        lm_fold_case: bool = False,
        lm: CharLM | None = None,
        lm_undo_keys: int = DEFAULT_LM_UNDO_KEYS,
    ):
        if int(beam_size) < 1:
            raise EmgtfError(f"beam_size: must be at least 1, got {beam_size}")
        if blank_skip_threshold is not None and not 0.0 < blank_skip_threshold < 1.0:
            raise EmgtfError(
                f"blank_skip_threshold: must lie strictly between 0 and 1 (or be None), got "
                f"{blank_skip_threshold}"
            )
        if int(lm_undo_keys) < 1:
            raise EmgtfError(f"lm_undo_keys: must be at least 1, got {lm_undo_keys}")
        self.beam_size = int(beam_size)
        self.lm_undo_keys = int(lm_undo_keys)
        num_classes = charset().num_classes
        k = int(max_labels_per_step)
        self.max_labels_per_step = num_classes if k <= 0 else min(k, num_classes)
        self.lm_weight = float(lm_weight)
        self.insertion_bonus = float(insertion_bonus)
        self.blank_skip_threshold = blank_skip_threshold
        if lm is None and lm_path is not None:
            lm = CharLM(resolve_lm_path(lm_path), fold_case=lm_fold_case)
        self.lm = lm

    def __repr__(self) -> str:
        lm = f", lm={str(self.lm.path)!r}, lm_fold_case={self.lm.fold_case}" if self.lm is not None else ""
        return (
            f"BeamSearchDecoder(beam_size={self.beam_size}, "
            f"max_labels_per_step={self.max_labels_per_step}, lm_weight={self.lm_weight}, "
            f"insertion_bonus={self.insertion_bonus}, "
            f"blank_skip_threshold={self.blank_skip_threshold}{lm})"
        )

    def decode_batch(self, log_probs, lengths, *, onsets: bool = False) -> list:
        """Decodes (batch, frames, 99) log-probabilities with (batch,) valid lengths: the keys of
        each element; with ``onsets``, a ``Decoding`` (keys, onset
        frames) each."""
        log_probs, lengths = check_batch(log_probs, lengths)
        if onsets:
            return [self.decode_onsets(lp[:length])[0] for lp, length in zip(log_probs, lengths)]
        return [self.decode(lp[:length])[0] for lp, length in zip(log_probs, lengths)]

    def decode(self, log_probs) -> tuple[str, float]:
        """Best key sequence of one utterance's (frames, 99) log-probabilities, and its score."""
        labels, _, score = self._search(np.asarray(log_probs, dtype=np.float64))
        return charset().labels_to_str(labels), score

    def decode_onsets(self, log_probs) -> tuple[Decoding, float]:
        """As ``decode``, with the onset frame of each key (``emgtf.decoding.onsets``)."""
        labels, onsets, score = self._search(np.asarray(log_probs, dtype=np.float64))
        return Decoding(charset().labels_to_str(labels), onsets), score

    def start(self, max_pending_keys: int | None = None) -> "BeamState":
        """A search to feed chunk by chunk: ``advance`` each (frames, 99) chunk, read ``best()``
        or ``committed`` between chunks, ``finish()`` at the end (see ``BeamState``)."""
        return BeamState(self, max_pending_keys)

    def _search(self, lp: np.ndarray) -> tuple[list[int], np.ndarray, float]:
        state = BeamState(self)
        state.advance(lp, commit=False)
        return state.final_onsets()


def _trim(stack, keep: int):
    """The newest ``keep`` entries of an undo stack (a new linked list: the old one may be shared
    with other prefixes). Called once the stack is twice ``keep`` deep, so its cost per key typed
    is constant."""
    entries = []
    while stack is not None and len(entries) < keep:
        entries.append(stack[:2])
        stack = stack[2]
    trimmed = None
    for depth, (sid, contrib) in enumerate(reversed(entries), start=1):
        trimmed = (sid, contrib, trimmed, depth)
    return trimmed


class BeamState:
    """The prefix beam search of ``BeamSearchDecoder``, carried across chunks of emissions.

    ``advance(log_probs)`` consumes (frames, 99) log-probabilities; after it, ``committed`` holds
    the keys every prefix in the beam shares (they can never change again: every later prefix
    extends one in the beam) and ``best()`` the best prefix's remaining keys. ``finish()`` gives
    the text that ``decode`` gives on the concatenated chunks: the chunks are handled frame by
    frame with the same arithmetic (blank-skip sums included), so the chunking changes nothing.

    The beam rarely agrees all the way: a prefix that lost one key long ago costs nothing more
    while blanks follow, so it can stay in a full beam for ever. Then nothing commits, and
    finding the shared keys costs more with every key typed. ``max_pending_keys`` bounds that:
    once the best prefix is that many keys past ``committed``, its older half is committed and the
    prefixes that disagree with it are dropped. That changes the result only if a prefix that
    differs more than ``max_pending_keys / 2`` keys back would have won in the end; None (the
    default) never forces a commit, so ``finish()`` always equals ``decode``.

    Memory: the beam and the keys not yet committed; committed prefix nodes are cut loose, so a
    long stream keeps only ``committed`` (and, with an LM, the per-prefix backspace stacks, at
    most ``2 * lm_undo_keys`` deep, and the LM's state cache, which grows with the LM contexts
    met, up to ``CharLM.MAX_STATES``).
    """

    def __init__(self, decoder: BeamSearchDecoder, max_pending_keys: int | None = None):
        if max_pending_keys is not None and int(max_pending_keys) < 2:
            raise EmgtfError(f"max_pending_keys: must be at least 2 (or None), got {max_pending_keys}")
        self.decoder = decoder
        self.max_pending_keys = None if max_pending_keys is None else int(max_pending_keys)
        lm = decoder.lm
        if lm is not None:
            lm.maybe_reset()  # only here: state ids must stay valid for the whole search
        self.committed_labels: list[int] = []
        self._committed_onsets: list[int] = []  # stream frame of each committed key's onset
        self._committed_text = ""  # of committed_labels[:len(_committed_text)], one char a key
        self.frames = 0  # frames consumed so far (skipped ones included)
        self.score: float | None = None
        # The beam, one entry per distinct prefix. A prefix is a linked list of [parent, label,
        # onset] nodes (None: the root; a node whose label is None: the committed part); onset:
        # the stream frame of the extension that added the label. ``parent``
        # holds the index of each entry's parent prefix in the beam (-1 if absent), which is how
        # extensions that reach a prefix already in the beam are found and merged.
        self.p_blank = np.zeros(1)
        self.p_key = np.full(1, _NEG)
        self.last = np.full(1, _ROOT, dtype=np.int64)
        self.parent = np.full(1, -1, dtype=np.int64)
        self.nodes: list = [None]
        # LM bookkeeping: each prefix's stack of (state id, contribution, rest, depth) for the
        # characters the LM scored (the latest lm_undo_keys to twice that many: see _trim), its
        # current state id and the contribution on top (undone by backspace).
        self.stacks: list = [None]
        self.sids = np.full(1, lm.bos if lm is not None else 0, dtype=np.int64)
        self.top_contrib = np.zeros(1)
        # Blank-skip bookkeeping in whole-stream frames: ``done`` is the first frame not yet
        # applied to the beam, ``done_cum`` the running sum of blank log-probabilities before it,
        # ``cum`` that sum over every frame seen. One sequential running sum across chunks is
        # exactly the sum ``decode`` takes over the whole utterance.
        self.done = 0
        self.done_cum = 0.0
        self.cum = 0.0

    @property
    def committed(self) -> str:
        # Only the keys committed since the last call are converted (CPU per chunk stays flat).
        if len(self._committed_text) < len(self.committed_labels):
            self._committed_text += charset().labels_to_str(self.committed_labels[len(self._committed_text):])
        return self._committed_text

    def advance(self, log_probs, *, commit: bool = True) -> None:
        """Consumes (frames, 99) log-probabilities; ``commit`` then moves the keys all prefixes
        share into ``committed``."""
        lp = np.asarray(log_probs, dtype=np.float64)
        if lp.ndim != 2 or lp.shape[1] != charset().num_classes:
            raise EmgtfError(
                f"log_probs: expected shape (frames, {charset().num_classes}), got {lp.shape}"
            )
        if self.score is not None:
            raise EmgtfError("this beam search has finished; start() a new one")
        if len(lp):
            self._advance(lp)
        if commit:
            self._commit()

    def _advance(self, lp: np.ndarray) -> None:
        dec = self.decoder
        blank, num_frames = charset().blank, lp.shape[0]
        lm = dec.lm
        lm_scale = dec.lm_weight / LN10  # the weight per natural-log unit
        bonus = dec.insertion_bonus
        offset = self.frames
        undo = dec.lm_undo_keys

        k = dec.max_labels_per_step
        if k < lp.shape[1]:
            tops = np.argpartition(-lp, k - 1, axis=1)[:, :k]
        else:
            tops = np.broadcast_to(np.arange(lp.shape[1]), lp.shape)
        top_lp = np.take_along_axis(lp, tops, axis=1)
        is_blank = tops == blank
        if lm is not None:
            # Per frame and candidate: LM column (blank: any, its extension is masked anyway).
            columns = lm.label_columns[np.minimum(tops, blank - 1)]
            columns[is_blank] = TRANSPARENT
            scored = columns >= 0
            deleting = columns == DELETE
            safe_columns = np.maximum(columns, 0)
        blank_lp = lp[:, blank]
        if dec.blank_skip_threshold is None:
            active = np.arange(num_frames)
        else:
            active = np.flatnonzero(blank_lp <= math.log(dec.blank_skip_threshold))
        # blank_cumsum[t]: the running sum over the whole stream before this chunk's frame t.
        blank_cumsum = np.cumsum(np.concatenate([[self.cum], blank_lp]))

        p_blank, p_key, last, parent = self.p_blank, self.p_key, self.last, self.parent
        nodes, stacks, sids, top_contrib = self.nodes, self.stacks, self.sids, self.top_contrib
        done, done_cum = self.done, self.done_cum

        frame = np.full(_ROOT + 1, _NEG)  # log-probability of the candidates, -inf elsewhere
        label_pos = np.full(_ROOT + 1, -1, dtype=np.int64)  # candidate index of each label
        candidates = np.arange(k)
        for t in active.tolist():
            if offset + t > done:  # frames done..t-1 are blank for sure: collapse into blank
                p_blank = np.logaddexp(p_blank, p_key) + (blank_cumsum[t] - done_cum)
                p_key = np.full_like(p_key, _NEG)
            done, done_cum = offset + t + 1, blank_cumsum[t + 1]

            labels = tops[t]
            frame[labels] = top_lp[t]
            p_total = np.logaddexp(p_blank, p_key)
            stay_blank = p_total + frame[blank]
            stay_key = p_key + frame[last]  # the last key held on (collapsed repeat)
            frame[labels] = _NEG

            n = len(p_total)
            # A repeated key only extends the paths that ended in blank; blank extends nothing.
            repeat = labels[None, :] == last[:, None]
            ext = np.where(repeat, p_blank[:, None], p_total[:, None]) + top_lp[t]
            ext[:, is_blank[t]] = _NEG
            if lm is not None:
                scores, next_sids = lm.transitions(sids, safe_columns[t])
                fused = np.where(scored[t], lm_scale * scores + bonus, 0.0)
                fused = np.where(deleting[t], -top_contrib[:, None], fused)
                ext += fused

            # Extensions that reach a prefix already in the beam add to that entry.
            label_pos[labels] = candidates
            pos = label_pos[last]
            label_pos[labels] = -1
            merge = np.flatnonzero((parent >= 0) & (pos >= 0))
            retimed = {}
            if merge.size:
                src = (parent[merge], pos[merge])
                # The key's onset follows the dominant path: an extension that brings more than
                # the prefix already had moves the onset to this frame.
                won = merge[ext[src] > np.logaddexp(stay_blank[merge], stay_key[merge])]
                retimed = dict(zip(won.tolist(), parent[won].tolist()))  # entry -> its parent
                stay_key[merge] = np.logaddexp(stay_key[merge], ext[src])
                ext[src] = _NEG

            scores = np.concatenate([np.logaddexp(stay_blank, stay_key), ext.ravel()])
            if len(scores) > dec.beam_size:
                chosen = np.argpartition(-scores, dec.beam_size - 1)[: dec.beam_size]
            else:
                chosen = np.arange(len(scores))
            alive = chosen[scores[chosen] > _NEG]
            chosen = alive if alive.size else chosen[:1]
            stays = chosen[chosen < n]
            rows, cols = np.divmod(chosen[chosen >= n] - n, k)

            new_index = np.full(n, -1, dtype=np.int64)  # old entry -> its index if it stays
            new_index[stays] = np.arange(len(stays))
            old_parent = parent[stays]
            parent = np.concatenate(
                [np.where(old_parent >= 0, new_index[old_parent], -1), new_index[rows]]
            )
            p_blank = np.concatenate([stay_blank[stays], np.full(len(rows), _NEG)])
            p_key = np.concatenate([stay_key[stays], ext[rows, cols]])
            new_keys = labels[cols]
            last = np.concatenate([last[stays], new_keys])
            # A retimed prefix gets a node of its own on the winning path (its parent entry's
            # node): prefixes extended from the old one keep theirs.
            nodes = [[nodes[retimed[i]], nodes[i][1], offset + t] if i in retimed and nodes[i][1] is not None
                     else nodes[i] for i in stays.tolist()] + [
                [nodes[r], key, offset + t] for r, key in zip(rows.tolist(), new_keys.tolist())
            ]
            if lm is not None:
                new_stacks = [stacks[i] for i in stays.tolist()]
                new_sids = sids[stays].tolist()
                new_top = top_contrib[stays].tolist()
                kinds = columns[t, cols].tolist()
                contribs = fused[rows, cols].tolist()
                successors = next_sids[rows, cols].tolist()
                for r, kind, contrib, sid in zip(rows.tolist(), kinds, contribs, successors):
                    stack = stacks[r]
                    if kind >= 0:
                        stack = (sid, contrib, stack, 1 if stack is None else stack[3] + 1)
                        if stack[3] > 2 * undo:
                            stack = _trim(stack, undo)
                    elif kind == DELETE:
                        stack = stack[2] if stack is not None else None
                        sid, contrib = (stack[0], stack[1]) if stack is not None else (lm.bos, 0.0)
                    else:  # TRANSPARENT
                        sid, contrib = int(sids[r]), float(top_contrib[r])
                    new_stacks.append(stack)
                    new_sids.append(sid)
                    new_top.append(contrib)
                stacks = new_stacks
                sids = np.asarray(new_sids, dtype=np.int64)
                top_contrib = np.asarray(new_top)

        self.p_blank, self.p_key, self.last, self.parent = p_blank, p_key, last, parent
        self.nodes, self.stacks, self.sids, self.top_contrib = nodes, stacks, sids, top_contrib
        self.done, self.done_cum = done, done_cum
        self.frames = offset + num_frames
        self.cum = float(blank_cumsum[-1])

    def _totals(self) -> np.ndarray:
        """Each prefix's score if the stream ended now (pending blanks, the LM's word end)."""
        p_total = np.logaddexp(self.p_blank, self.p_key)
        if self.frames > self.done:
            p_total = p_total + (self.cum - self.done_cum)
        lm = self.decoder.lm
        if lm is not None:  # end the word each prefix leaves open
            lm_scale = self.decoder.lm_weight / LN10
            p_total = p_total + lm_scale * np.array([lm.end_score(int(s)) for s in self.sids])
        return p_total

    @staticmethod
    def _tail(node) -> list[int]:
        """The labels of a prefix after the committed part, in order."""
        labels = []
        while node is not None and node[1] is not None:
            labels.append(node[1])
            node = node[0]
        return labels[::-1]

    @staticmethod
    def _tail_onsets(node) -> list[int]:
        """The onset frames of a prefix's keys after the committed part, in order."""
        onsets = []
        while node is not None and node[1] is not None:
            onsets.append(node[2])
            node = node[0]
        return onsets[::-1]

    @property
    def committed_onsets(self) -> np.ndarray:
        """The onset frame of each committed key, counted from the stream's first frame (those
        of the best prefix when the key was committed)."""
        return np.asarray(self._committed_onsets, dtype=np.int64)

    def _commit(self) -> None:
        tails = [self._tail(node) for node in self.nodes]
        shared = min(len(t) for t in tails)
        for tail in tails[1:]:
            i = 0
            while i < shared and tail[i] == tails[0][i]:
                i += 1
            shared = i
        best = int(np.argmax(self._totals()))
        best_tail = tails[best]
        best_node = self.nodes[best]
        if self.max_pending_keys and len(best_tail) - shared > self.max_pending_keys:
            shared = len(best_tail) - self.max_pending_keys // 2
            agree = [t[:shared] == best_tail[:shared] for t in tails]
            self._keep(np.flatnonzero(agree))
            tails = [t for t, keep in zip(tails, agree) if keep]
        if shared == 0:
            return
        self.committed_labels += tails[0][:shared]
        self._committed_onsets += self._tail_onsets(best_node)[:shared]
        # The node of the last shared key becomes the committed root of every prefix. Two
        # entries can spell the same keys with different nodes (an extension whose parent left
        # the beam is not merged), so each entry's own node is found first, then all are cut.
        cut = []
        for node, tail in zip(self.nodes, tails):
            for _ in range(len(tail) - shared):
                node = node[0]
            cut.append(node)
        for node in cut:
            node[0], node[1], node[2] = None, None, None

    def _keep(self, entries: np.ndarray) -> None:
        """Drops every beam entry but ``entries`` (indices, in order)."""
        new_index = np.full(len(self.p_blank), -1, dtype=np.int64)
        new_index[entries] = np.arange(len(entries))
        parent = self.parent[entries]
        self.parent = np.where(parent >= 0, new_index[parent], -1)
        self.p_blank, self.p_key = self.p_blank[entries], self.p_key[entries]
        self.last = self.last[entries]
        self.nodes = [self.nodes[i] for i in entries.tolist()]
        if self.decoder.lm is not None:  # without an LM its bookkeeping is never per entry
            self.sids, self.top_contrib = self.sids[entries], self.top_contrib[entries]
            self.stacks = [self.stacks[i] for i in entries.tolist()]

    def best(self) -> tuple[str, str]:
        """(committed keys, the best prefix's keys after them) if the stream ended now."""
        best = int(np.argmax(self._totals()))
        cs = charset()
        return self.committed, cs.labels_to_str(self._tail(self.nodes[best]))

    def final(self) -> tuple[list[int], float]:
        """The best prefix's labels and score at the end of the stream."""
        labels, _, score = self.final_onsets()
        return labels, score

    def final_onsets(self) -> tuple[list[int], np.ndarray, float]:
        """The best prefix's labels, their onset frames and its score at the end of the stream."""
        p_total = self._totals()
        best = int(np.argmax(p_total))
        node = self.nodes[best]
        onsets = np.asarray(self._committed_onsets + self._tail_onsets(node), dtype=np.int64)
        return self.committed_labels + self._tail(node), onsets, float(p_total[best])

    def finish(self) -> str:
        """The decoded keys of the whole stream: ``decode`` of the concatenated chunks."""
        labels, self.score = self.final()
        return charset().labels_to_str(labels)
