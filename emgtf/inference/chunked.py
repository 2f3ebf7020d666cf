"""Whole sessions in bounded memory: a Keras model's log-probabilities of a whole session computed
in chunks, equal to the one-shot forward pass (batch 1, the reference's test protocol).

How depends on what an emission reads (``emgtf.models.streaming.model_reach``, declared by the
layers):

- ``overlap``: a bounded span of spectrogram frames with zero padding at the input's edges (the
  TDS baseline, the TCN, ConvResNet without GRU). Chunk k keeps its own run of emissions and reads
  ``ceil(past / subsampling)`` emissions of context before it and ``ceil(future / subsampling)``
  after (0 and 0 for the TDS, whose unpadded windows the emission rule already counts; the TCN's
  causal padding: its receptive field before), so every kept emission reads no padding a one-shot
  pass would not: the same numbers, to float rounding. The first chunk starts at the session's
  first sample and the last ends at its last whole frame, as the one-shot pass does, and all
  chunks have one length, so ``batch`` of them go through the model at once.
- ``step``: running statistics from the session's start (SplashNet's RollingTimeNorm), which a
  chunk cut from the middle cannot see: the model's incremental step
  (``emgtf.models.streaming``), whose fixed-size state carries them, fed ``chunk_seconds`` of
  samples per call (the last call zero-padded: the step is causal, so padding after the session's
  end only makes emissions that are dropped). One chunk at a time: each needs the state before it.
- ``whole``: the whole past or the whole input (recurrent layers, self-attention, absolute
  positions, a layer that declares no reach): one forward pass over the whole session, whose
  memory grows with its length; or, with ``approximate=True``, ``approximate`` chunks with
  ``context_seconds`` of context on both sides, the transcriber's stitching
  (``emgtf.inference.chunks.plan_chunks``), not equal to the one-shot pass
  (docs/guides/long-sessions.md measures by how much).

A session no longer than one chunk (its context included) runs whole in every mode.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from emgtf.charset import NUM_CLASSES
from emgtf.data.session import MAX_ABS_EMG
from emgtf.errors import EmgtfError, SessionFileError
from emgtf.inference.runners import check_finite, forward
from emgtf.inference.chunks import Chunk, plan_chunks

__all__ = ["Chunking", "SessionForward", "plan_exact_chunks"]

# 40 s of signal per forward pass: Meta's TDS took the same CPU per minute of signal (1.5 s, AMD
# EPYC) from 4 x 10 s to 4 x 30 s chunks, and its rotation-invariant MLP's activations grow with
# the frames of a pass (about 3 MB per second of signal): 10 s chunks keep them near 130 MB.
DEFAULT_CHUNK_SECONDS = 10.0
DEFAULT_BATCH = 4
DEFAULT_CONTEXT_SECONDS = 4.0


@dataclass(frozen=True)
class Chunking:
    """How whole sessions are cut (the ``chunk`` options of ``emgtf.evaluate``).

    ``seconds``: emissions each chunk keeps (its context comes on top; None: whole sessions, no
    chunks); ``batch``: chunks per forward pass (``overlap`` mode); ``approximate``: chunk models
    whose emissions read the whole past or input too, with ``context_seconds`` of context on both
    sides (not equal to the one-shot pass); otherwise they run whole.
    """

    seconds: float | None = DEFAULT_CHUNK_SECONDS
    batch: int = DEFAULT_BATCH
    approximate: bool = False
    context_seconds: float = DEFAULT_CONTEXT_SECONDS

    def __post_init__(self):
        if self.seconds is not None and (isinstance(self.seconds, bool) or not self.seconds > 0):
            raise EmgtfError(f"chunk.seconds must be > 0 or null (whole sessions), got {self.seconds!r}")
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise EmgtfError(f"chunk.batch must be an integer >= 1, got {self.batch!r}")
        if not isinstance(self.approximate, bool):
            raise EmgtfError(f"chunk.approximate must be true or false, got {self.approximate!r}")
        if isinstance(self.context_seconds, bool) or not self.context_seconds >= 0:
            raise EmgtfError(f"chunk.context_seconds must be >= 0, got {self.context_seconds!r}")

    @classmethod
    def from_config(cls, cfg) -> "Chunking":
        """From an ``evaluate.yaml`` ``chunk`` section (None: the defaults)."""
        if cfg is None:
            return cls()
        known = {"seconds", "batch", "approximate", "context_seconds"}
        values = dict(cfg)
        unknown = sorted(set(values) - known)
        if unknown:
            raise EmgtfError(f"chunk.{unknown[0]}: unknown option (known: {', '.join(sorted(known))})")
        return cls(**values)


def plan_exact_chunks(num_samples: int, rule, *, chunk_emissions: int, before: int, after: int) -> list[Chunk]:
    """Chunks of one length that together give each of the session's emissions once, in order,
    each kept emission with ``before`` emissions of context before it and ``after`` after it inside
    its chunk (or the session's own edge there). Every chunk computes ``chunk_emissions + before +
    after`` emissions; the last one ends with the session (at its last whole frame, where the
    subsampling allows). A session with no more emissions than that is one chunk, whole."""
    if chunk_emissions < 1 or before < 0 or after < 0:
        raise EmgtfError(f"chunks need chunk_emissions >= 1 and context >= 0, got {chunk_emissions}, "
                         f"{before} and {after}")
    total = rule.emissions(num_samples)
    width = chunk_emissions + before + after
    if total <= width:
        return [Chunk(0, num_samples, 0, total, 0)]
    length = rule.samples_for(width)
    chunks, first = [], 0
    while first < total:
        read_from = max(0, first - before)
        if read_from + width >= total:  # the last: it ends where the session does
            read_from = total - width
            start = read_from * rule.stride
            stop = num_samples
            if rule.frames(num_samples) - read_from * rule.subsampling == rule.frames(length):
                stop = start + length  # the samples after its last whole frame change nothing
            chunks.append(Chunk(start, stop, first - read_from, total - read_from, first))
            break
        keep_stop = min(first + chunk_emissions, read_from + width - after) - read_from
        start = read_from * rule.stride
        chunks.append(Chunk(start, start + length, first - read_from, keep_stop, first))
        first = read_from + keep_stop
    return chunks


def read_checked(session, start: int, stop: int) -> np.ndarray:
    """Samples ``[start, stop)`` of an open session, checked finite and below the magnitude whose
    spectrogram power would overflow float32 (one line naming the file, sample, band and channel,
    as the data pipeline's)."""
    emg = session.read(start, stop)
    bad = np.argwhere(~(np.abs(emg) <= MAX_ABS_EMG))  # NaN compares false
    if bad.size:
        row, band, channel = (int(v) for v in bad[0])
        value = emg[row, band, channel]
        why = ("the EMG must be finite (NaN or infinity)" if not np.isfinite(value) else
               f"above {MAX_ABS_EMG:.0e}, its spectrogram power would overflow float32")
        raise SessionFileError(session.path, f"EMG value {value:.3g} at sample {start + row} "
                               f"({('left', 'right')[band]} band, channel {channel}); {why}")
    return emg


class SessionForward:
    """A Keras model's log-probabilities of whole sessions, chunk by chunk (module docstring).

    ``forward.blocks(session)`` yields the session's emissions (n, 99) float32 in order, a chunk's
    run at a time; ``forward.log_probs(session)`` is all of them, (emissions, 99). ``session``: an
    open ``emgtf.data.EMGSession``. ``mode``: "overlap", "step", "whole" or "approximate".
    """

    def __init__(self, model, chunking: Chunking | None = None, *, source: str | None = None):
        from emgtf.models.emission import EmissionRule
        from emgtf.models.streaming import model_reach

        self.model = model
        self.chunking = chunking = chunking if chunking is not None else Chunking()
        self.source = source or f"model {model.name}"
        self.rule = rule = EmissionRule.from_model(model)
        self.reach = reach = model_reach(model, streaming=False)
        self._step = None
        sub = rule.subsampling
        self.before, self.after = math.ceil(reach.past / sub), math.ceil(reach.future / sub)
        if chunking.seconds is None:
            self.mode = "whole"
        elif reach.finite and not reach.running_statistics:
            self.mode = "overlap"
        elif reach.finite and self._has_step():
            self.mode = "step"
        elif chunking.approximate:
            self.mode = "approximate"
            self.before = self.after = math.ceil(chunking.context_seconds * rule.emission_rate)
        else:
            self.mode = "whole"
        self.chunk_emissions = max(1, round((chunking.seconds or 0) * rule.emission_rate))

    def _has_step(self) -> bool:
        from emgtf.models.streaming import state_layout

        try:
            state_layout(self.model)
        except EmgtfError:
            return False
        return True

    def describe(self) -> str:
        """The mode in words, for a log line."""
        c = self.chunking
        if self.mode == "overlap":
            return (f"exact chunks of {c.seconds:g} s, {self.before} + {self.after} emissions of context, "
                    f"{c.batch} per forward pass")
        if self.mode == "step":
            return f"exact, the incremental step over {c.seconds:g} s at a time"
        if self.mode == "approximate":
            return f"approximate chunks of {c.seconds:g} s with {c.context_seconds:g} s of context"
        if c.seconds is None:
            return "whole sessions (chunking off)"
        if self.reach.why:  # "is a bidirectional RNN, so ...": the clause before the consequence
            return f"whole sessions (a layer {self.reach.why.split(',')[0]})"
        if self.reach.unbounded_future:
            return "whole sessions (a layer declares no reach in time)"
        return "whole sessions (each emission reads the whole past)"

    def plan(self, num_samples: int) -> list[Chunk]:
        """The chunks of a session of ``num_samples`` samples (in "step" mode, the samples of each
        step call and roughly the emissions it gives)."""
        total = self.rule.emissions(num_samples)
        if self.mode == "overlap":
            return plan_exact_chunks(num_samples, self.rule, chunk_emissions=self.chunk_emissions,
                                     before=self.before, after=self.after)
        if self.mode == "approximate":
            return plan_chunks(num_samples, self.rule, chunk_emissions=self.chunk_emissions,
                               context_emissions=self.before)
        if self.mode == "step" and total > self.chunk_emissions and self._warms_up(num_samples):
            return plan_exact_chunks(num_samples, self.rule, chunk_emissions=self.chunk_emissions,
                                     before=0, after=0)
        return [Chunk(0, num_samples, 0, total, 0)]

    def log_probs(self, session, name: str | None = None) -> np.ndarray:
        blocks = list(self.blocks(session, name))
        return np.concatenate(blocks) if blocks else np.zeros((0, NUM_CLASSES), np.float32)

    def blocks(self, session, name: str | None = None) -> Iterator[np.ndarray]:
        """``name``: the session in error messages (None: its path)."""
        name = name or str(session.path)
        num_samples = len(session)
        total = self.rule.emissions(num_samples)
        if total == 0:
            return
        chunks = self.plan(num_samples)
        if self.mode == "step" and len(chunks) > 1:
            yield from self._stepped(session, name, num_samples, total)
        else:
            yield from self._batched(session, name, chunks)

    def _batched(self, session, name: str, chunks: list[Chunk]) -> Iterator[np.ndarray]:
        """Runs ``chunks`` through the model, up to ``batch`` of one length per forward pass."""
        i = 0
        while i < len(chunks):
            group = [chunks[i]]
            length = chunks[i].stop - chunks[i].start
            while (len(group) < self.chunking.batch and i + len(group) < len(chunks)
                   and chunks[i + len(group)].stop - chunks[i + len(group)].start == length):
                group.append(chunks[i + len(group)])
            i += len(group)
            emg = np.stack([read_checked(session, c.start, c.stop) for c in group])
            log_probs = forward(self.model, emg)
            emitted = self.rule.emissions(length)
            if log_probs.shape[1] < emitted or log_probs.shape[-1] != NUM_CLASSES:
                raise EmgtfError(f"{self.source}: the model emitted frames of shape {log_probs.shape[1:]} "
                                 f"for {length} samples, but its emission rule says {emitted}")
            for chunk, rows in zip(group, log_probs):
                kept = rows[chunk.keep_start : chunk.keep_stop]
                check_finite(kept[None], self.source, [name], frame_offset=chunk.first)
                yield kept

    def _warms_up(self, num_samples: int) -> bool:
        """Whether a rolling norm's warm-up completes with the session's own frames (else the zeros
        that pad the last call would enter its statistics: such a short session runs whole)."""
        from emgtf.inference.steps import CompiledStep

        if self._step is None:
            self._step = CompiledStep(self.model)
        layout = self._step.layout
        skipped = layout.overlap_samples // layout.hop_length if layout.held_frames else 0
        return self.rule.frames(num_samples) - skipped >= layout.held_frames

    def _stepped(self, session, name: str, num_samples: int, total: int) -> Iterator[np.ndarray]:
        """The incremental step over ``chunk_seconds`` of samples per call (a whole number of hops;
        the last call zero-padded)."""
        step, hop = self._step, self.rule.hop_length
        unit = self.chunk_emissions * self.rule.subsampling * hop
        state = step.initial_state()
        skip = step.layout.warmup_emissions  # outputs that read the zero state, not the signal
        emitted = 0
        for start in range(0, num_samples, unit):
            samples = read_checked(session, start, min(start + unit, num_samples))
            if len(samples) < unit:
                samples = np.concatenate([samples, np.zeros((unit - len(samples), *samples.shape[1:]),
                                                            np.float32)])
            state, log_probs = step(state, samples)
            drop = min(skip, len(log_probs))
            skip -= drop
            kept = log_probs[drop : drop + total - emitted]
            if len(kept):
                check_finite(kept[None], self.source, [name], frame_offset=emitted)
                emitted += len(kept)
                yield kept
        if emitted != total:
            raise EmgtfError(f"{self.source}: the incremental step gave {emitted} emissions for "
                             f"{num_samples} samples, but the emission rule says {total}")
