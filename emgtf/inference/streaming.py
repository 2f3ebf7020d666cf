"""Decoding keys as they are typed, from a live stream of raw EMG chunks.

A ``StreamingDecoder`` is fed chunks of raw EMG (samples, 2, 16) float32 of any size
(``push``) and answers each with a ``StreamUpdate``: the keys committed so far (final) and
the decoder's current best guess at the keys after them (may still change). It keeps bounded
state, so memory and CPU per chunk stay the same over an hour of signal.

How an emission is computed from a stream. By the model's ``EmissionRule``, emission ``e``
of an input that starts at sample ``s`` (a multiple of the stride) is emission ``s / stride + e``
of the whole session, and it reads spectrogram frames ``e .. e + lost_frames`` (times the
subsampling). What it reads beyond that window is the model's *reach*
(``emgtf.models.streaming.model_reach``, read off its layers' declarations):

- nothing (the TDS baseline: unpadded convolutions, per-frame layers): the model's incremental
  step (``emgtf.models.streaming``) keeps the last ``n_fft - hop`` raw samples and each TDS
  block's last ``kernel_width - 1`` input frames, and each push runs it once on the push's whole
  hops (the rest waits for the next push), so every frame is computed once. Its emissions *are*
  the whole-session emissions (to float rounding). A ``.keras`` checkpoint streams through its
  TFLite step by default in the commands (``emgtf.export.step_cache.cached_tflite_step``: 3-4x faster than the Keras step, built the
  first time and kept beside the checkpoint). A TFLite export runs its own step, the same
  computation (``emgtf.export.stream_step``), on whole chunks of its fixed ``chunk_samples``
  (the rest waits for the next push; a stream's last partial chunk is zero-padded at
  ``finish()``). Without either (a SavedModel or ONNX export) the decoder instead keeps the
  samples the next emission needs, at most ``lost_frames * hop + n_fft`` (2048 samples, 1 s, for
  Meta's model), and re-runs the model on them plus the new samples: the same emissions at the
  cost of the whole receptive field;
- nothing, but normalised by running statistics from the stream's start (SplashNet's
  RollingTimeNorm): through the incremental step only, whose state carries those statistics
  (a fixed-size summary of the whole past) and the norm's warm-up: the first 125 frames are held
  back until the 125th, which adds to the latency of the first emissions only (none for SplashNet,
  whose first emission reads 125 frames anyway). Still the whole-session emissions. A window
  re-run would normalise by the window's statistics instead, so without a Keras model (a
  SavedModel or ONNX export) such a model is refused;
- a bounded number of frames of zero-padded past or future (causal or "same" padded dilated
  convolutions: the TCN, ConvResNet without GRU): as above with that many frames of context
  kept before, and emissions that still read the padding past the end held back until more
  signal (or ``finish``) comes: still the whole-session emissions;
- the unbounded past (a unidirectional LSTM / GRU): no emission is ever exactly the
  whole-session one; each push runs the model on the last ``context_seconds`` (default 4 s) of
  signal before the new emissions, so the state is rebuilt from that window. This is an
  approximation (the test suite measures it) and costs a model run over the whole context per
  push;
- the unbounded future (bidirectional RNNs, full self-attention, absolute positions): refused
  with one line saying why; such models decode whole sessions (``python -m emgtf.transcribe``).

Decoding is incremental too: ``emgtf.decoding.BeamSearchDecoder.start`` and
``emgtf.decoding.GreedyDecoder.start`` carry the search across pushes, and ``finish()`` gives
exactly the offline ``decode_batch`` of all the emissions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.charset import NUM_CLASSES
from emgtf.errors import EmgtfError
from emgtf.inference.steps import CompiledStep, TFLiteStep, compiled_step

if TYPE_CHECKING:  # Keras is imported when a model is, not by the CLI before it
    from emgtf.console import Log
    from emgtf.models.layers.base import Reach

__all__ = ["StreamUpdate", "StreamingDecoder", "DEFAULT_CONTEXT_SECONDS"]

DEFAULT_CONTEXT_SECONDS = 4.0
DEFAULT_MAX_PENDING_KEYS = 100  # about 20 s of typing
_NO_EMISSIONS = np.zeros((0, NUM_CLASSES), np.float32)


def _needs_step(source: str, why: str) -> EmgtfError:
    return EmgtfError(
        f"{source}: its RollingTimeNorm normalises by statistics from the start of the stream, "
        f"which only the incremental step carries and a window re-run cannot give, and {why}; "
        "stream its .keras checkpoint (TDS or SplashNet layers)"
    )


def _export_reach(path, family: str, training_config) -> Reach:
    """The reach of an export with no Keras layers to read (SavedModel, ONNX): the layers of its
    family built from the training config recorded in its export.json (weights do not matter)."""
    from emgtf import models
    from emgtf.models.streaming import Reach, model_reach

    spec = (training_config or {}).get("model") if isinstance(training_config, dict) else None
    if isinstance(spec, dict) and spec.get("family") == family:
        hp = {k: v for k, v in spec.items() if k != "family"}
        return model_reach(models.build(family, **hp))
    if family == "tds_conv_ctc":  # whatever its sizes: unpadded convolutions only
        return Reach()
    raise EmgtfError(
        f"{path}: its export.json records no model config for the {family} family, so its reach "
        "in time is unknown; stream its .keras checkpoint instead"
    )


@dataclass
class StreamUpdate:
    """The decoder's output after a push: ``committed`` keys are final, ``partial`` the current
    best guess at the keys after them; ``emissions`` the emissions decoded so far, ``log_probs``
    (new emissions, 99) those this push added: emissions ``[emissions - len(log_probs),
    emissions)`` of the session; ``onsets`` (int64, one per committed key) the emission where
    each committed key starts (``emgtf.decoding.onsets``), counted from the stream's start, as
    ``decode_batch(..., onsets=True)`` gives them offline (``streamer.rule.samples_for(e + 1)``:
    the samples emission ``e`` needed, a key's place in the signal)."""

    committed: str
    partial: str
    emissions: int
    log_probs: np.ndarray
    final: bool = False
    onsets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def text(self) -> str:
        """Committed and partial keys together."""
        return self.committed + self.partial


@dataclass
class _Buffer:
    """Samples ``[start, start + len(data))`` of the stream, kept for the next emissions."""

    start: int = 0
    data: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_BANDS, NUM_CHANNELS), np.float32))


class StreamingDecoder:
    """Decodes a live stream of raw EMG chunks into keys, with bounded state.

    Args:
        runner: a ``emgtf.inference.runners.Runner``.
        reach: the model's ``Reach``
            (``emgtf.models.streaming.model_reach``).
        decoder: a GreedyDecoder (default) or a BeamSearchDecoder.
        context_seconds: for recurrent models only, the signal before the new emissions each
            push runs the model on.
        min_step_samples: samples to gather before a model run (0: run on every push that
            completes an emission, or a hop on the incremental path).
        max_pending_keys: for beam search, the keys its best prefix may run ahead of the
            committed ones before the older half is committed (see
            ``emgtf.decoding.beam.BeamState``); None: only what every prefix agrees on.
        step: the model's ``CompiledStep`` (TDS) or a TFLite export's ``TFLiteStep``:
            each push computes only its new frames; None: each push re-runs the model over the
            kept receptive field (windowed).

    Use ``from_model`` (a Keras model) or ``load`` (a ``.keras`` file or export folder).
    """

    def __init__(self, runner, reach: Reach, decoder=None, *, context_seconds: float = DEFAULT_CONTEXT_SECONDS,
                 min_step_samples: int = 0, max_pending_keys: int | None = DEFAULT_MAX_PENDING_KEYS,
                 step: CompiledStep | TFLiteStep | None = None):
        from emgtf.decoding import GreedyDecoder

        if not context_seconds > 0:
            raise EmgtfError(f"context_seconds must be > 0, got {context_seconds}")
        self.runner = runner
        self.rule = rule = runner.rule
        self.reach = reach
        self.decoder = decoder if decoder is not None else GreedyDecoder()
        self.context_seconds = float(context_seconds)
        self.min_step_samples = max(0, int(min_step_samples))
        self.max_pending_keys = max_pending_keys
        self.step = step
        sub = rule.subsampling
        # Emissions before the next one that each model run must recompute (padding at the
        # input's start spoils them), and emissions at its end held back (padding at its end).
        if reach.unbounded_past:
            self.context_emissions = math.ceil(context_seconds * rule.emission_rate)
        else:
            self.context_emissions = math.ceil(reach.past / sub)
        self.holdback_emissions = math.ceil(reach.future / sub)
        # Between pushes the buffer holds fewer samples than the next emission beyond the kept
        # context and held-back ones needs, plus what waits for the minimum step. (The step's
        # state spans n_fft - hop + lost_frames * hop samples, and less than a hop waits: the
        # same bound.)
        self.max_buffer_samples = (
            rule.samples_for(self.context_emissions + self.holdback_emissions + 1) - 1
            + self.min_step_samples
        )
        if step is not None:  # less than a step unit (a hop or a chunk) waits; the state spans the rest
            self.max_buffer_samples = step.layout.span_samples + step.unit_samples - 1 + self.min_step_samples
        elif reach.running_statistics:
            raise _needs_step(runner.source, "no step was given (a SavedModel or ONNX export has "
                              "no Keras layers to step)")
        self.reset()

    @classmethod
    def from_model(cls, model, decoder=None, *, incremental: bool = True, source: str | None = None,
                   **options) -> "StreamingDecoder":
        """A streaming decoder of a Keras model: through its incremental step if it has one and
        ``incremental`` (else windowed)."""
        from emgtf.inference.runners import keras_runner
        from emgtf.models.streaming import model_reach, state_layout

        reach = model_reach(model)  # refuse before anything else is done
        if reach.running_statistics:  # the step or nothing: say why it has none
            where = source or f"model '{model.name}'"
            if not incremental:
                raise _needs_step(where, "incremental=False asks for the windowed path")
            try:
                state_layout(model)
            except EmgtfError as e:
                raise _needs_step(where, str(e)) from None
        step = compiled_step(model) if incremental else None
        return cls(keras_runner(model, source), reach, decoder, step=step, **options)

    @classmethod
    def load(cls, path, decoder=None, *, incremental: bool = True, threads: int | None = None,
             step: str = "auto", build_step=None, log: Log | None = None, **options) -> "StreamingDecoder":
        """A streaming decoder of a ``.keras`` checkpoint or an export folder (a Keras one streams
        through the incremental step as ``from_model``, a TFLite one through its step
        ``model.tflite``, or the ``.tflite`` file of the folder that ``path`` names, e.g.
        ``model_int8.tflite``; SavedModel and ONNX ones windowed). ``threads``: the TFLite
        interpreter's. ``step`` (a ``.keras`` file): "auto" streams through the TFLite step that
        ``build_step(checkpoint, model, threads=..., log=...)`` returns (the commands pass
        ``emgtf.export.step_cache.cached_tflite_step``: built once and kept beside the
        checkpoint; ``emgtf.export.step_cache.load_streamer`` is this call with it) where the
        model has a fixed-shape step, else its Keras step; "keras", or no ``build_step``, the Keras
        step. (Building a TFLite step is export's work, a layer above this one.) ``log``: where
        the step's build says so (a warning; None: silent)."""
        from pathlib import Path

        from emgtf.inference.checkpoints import load_checkpoint
        from emgtf.inference.runners import load_runner

        path = Path(path).expanduser()
        tflite_file = None
        if path.is_file() and path.suffix == ".tflite":
            path, tflite_file = path.parent, path
        elif path.is_file():
            return cls._from_checkpoint(path, load_checkpoint(path), decoder, incremental=incremental,
                                        threads=threads, step=step, build_step=build_step, log=log, **options)
        from emgtf.inference.export_folder import METADATA_FILE, read_metadata

        runner = load_runner(path)
        doc = read_metadata(path)
        if tflite_file is not None and doc["format"] != "tflite":
            raise EmgtfError(f"{tflite_file}: its folder's {METADATA_FILE} is not a TFLite export's")
        if tflite_file is not None and not incremental:
            raise EmgtfError(f"{tflite_file}: a .tflite file streams through its step only; "
                             "incremental=False runs the export folder's model.tflite windowed")
        if doc["format"] == "keras":
            model_file = path / str(doc.get("model_file"))
            return cls._from_checkpoint(model_file, load_checkpoint(model_file), decoder, incremental=incremental,
                                        threads=threads, step=step, build_step=build_step, log=log,
                                        source=runner.source, **options)
        reach = _export_reach(path, runner.family, doc.get("training_config"))
        step = None
        if doc["format"] == "tflite" and incremental:
            from emgtf.inference.export_folder import StepLayout

            layout = StepLayout.from_json(doc.get("streaming"), path / METADATA_FILE)
            step = TFLiteStep(tflite_file or path / str(doc["model_file"]), layout, threads)
        return cls(runner, reach, decoder, step=step, **options)

    @classmethod
    def _from_checkpoint(cls, path, model, decoder, *, incremental: bool, threads, step: str,
                         build_step=None, log: Log | None = None, source: str | None = None,
                         **options) -> "StreamingDecoder":
        """``from_model`` of a ``.keras`` file, through its cached TFLite step where it has one
        and ``step`` is "auto" (a model the step cannot convert streams through its Keras step,
        which says why)."""
        from emgtf.models.streaming import state_layout

        if step not in ("auto", "keras"):
            raise EmgtfError(f"step must be auto or keras, got {step!r}")
        source = source or f"checkpoint {path}"
        streamer = cls.from_model(model, decoder, incremental=incremental, source=source, **options)
        if step == "keras" or build_step is None or streamer.step is None:
            return streamer
        if state_layout(model).held_frames:
            streamer.step.why_not_tflite = ("no TFLite step: its rolling norm's warm-up varies the rows "
                                            "a step returns, which fixed TFLite shapes cannot")
            return streamer
        try:
            fast = build_step(path, model, threads=threads,
                              log=None if log is None else (lambda line: log(line, warning=True)))
        except EmgtfError as e:
            streamer.step.why_not_tflite = f"no TFLite step: {str(e)[:200]}"
            return streamer
        return cls(streamer.runner, streamer.reach, decoder, step=fast, **options)

    def reset(self) -> None:
        """Starts a new stream."""
        self.received = 0  # samples pushed so far
        self.next_emission = 0  # the first emission of the session not yet decoded
        self._buffer = _Buffer()
        self._search = self.decoder.start(self.max_pending_keys)
        self._finished = False
        self._pending = 0  # samples pushed since the last model run
        self.model_runs = 0
        self.frames_computed = 0  # spectrogram frames the model runs have computed
        if self.step is not None:
            self._state = self.step.initial_state()
            self._step_outputs = 0  # of the step, warm-up included

    # --- the stream --------------------------------------------------------------------------

    def push(self, chunk) -> StreamUpdate:
        """Feeds (samples, 2, 16) raw EMG; returns the keys so far."""
        if self._finished:
            raise EmgtfError("this stream has finished; call reset() to start another")
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 3 or chunk.shape[1:] != (NUM_BANDS, NUM_CHANNELS):
            raise EmgtfError(
                f"an EMG chunk must have shape (samples, {NUM_BANDS}, {NUM_CHANNELS}), got {chunk.shape}"
            )
        if not np.isfinite(chunk).all():
            bad = self.received + int(np.flatnonzero(~np.isfinite(chunk).all(axis=(1, 2)))[0])
            raise EmgtfError(f"EMG sample {bad} of the stream is not finite (NaN or infinity)")
        buf = self._buffer
        buf.data = np.concatenate([buf.data, chunk]) if len(buf.data) else chunk.copy()
        self.received += len(chunk)
        self._pending += len(chunk)
        new = _NO_EMISSIONS
        if self._pending >= self.min_step_samples:  # one model run per push at most
            self._pending = 0
            new = self._run(final=False)
        committed, partial = self._search.best()
        return StreamUpdate(committed, partial, self.next_emission, new, onsets=self._search.committed_onsets)

    def finish(self) -> StreamUpdate:
        """Ends the stream: decodes what was held back and closes the search. Its ``committed``
        is the whole decoded key sequence."""
        if self._finished:
            raise EmgtfError("this stream has finished; call reset() to start another")
        new = self._run(final=True)
        self._finished = True
        text = self._search.finish()
        # The beam's last keys were never committed while it ran: their onsets are its best prefix's.
        final_onsets = getattr(self._search, "final_onsets", None)
        onsets = final_onsets()[1] if final_onsets is not None else self._search.committed_onsets
        return StreamUpdate(text, "", self.next_emission, new, final=True, onsets=onsets)

    @property
    def buffered_samples(self) -> int:
        """Samples kept for the next emissions (bounded by ``max_buffer_samples``); on the
        incremental path, those waiting for a whole hop plus the span the step's fixed-size
        state stands for."""
        span = self.step.layout.span_samples if self.step is not None else 0
        return len(self._buffer.data) + span

    def describe(self) -> str:
        """How each push computes its emissions, for a log line."""
        if self.step is not None:
            return self.step.describe()
        return "windowed, each push re-runs the model over the kept signal"

    # --- internals ---------------------------------------------------------------------------

    def _run(self, *, final: bool) -> np.ndarray:
        """Runs the model on the buffer if that completes emissions; decodes them; trims.
        Returns the new emissions (new, 99)."""
        if self.step is not None:
            return self._run_step(final)
        rule, buf = self.rule, self._buffer
        first = buf.start // rule.stride  # session index of the buffer's emission 0
        available = rule.emissions(len(buf.data))
        # Emissions whose future padding is still inside the input are not final yet.
        stop = available if final else available - self.holdback_emissions
        new = stop - (self.next_emission - first)
        if new <= 0:
            return _NO_EMISSIONS
        # Run on just the samples those emissions need (fewer distinct input shapes to trace).
        needed = len(buf.data) if final else rule.samples_for(stop + self.holdback_emissions)
        log_probs = self.runner.log_probs(buf.data[:needed])
        self.model_runs += 1
        self.frames_computed += rule.frames(needed)
        emitted = log_probs[self.next_emission - first : stop]
        self._search.advance(emitted)
        self.next_emission += len(emitted)
        # Keep the context the next emissions need, from a multiple of the stride.
        keep_from = max(0, self.next_emission - self.context_emissions) * rule.stride
        if keep_from > buf.start:
            buf.data = buf.data[keep_from - buf.start :]
            buf.start = keep_from
        return emitted

    def _run_step(self, final: bool) -> np.ndarray:
        """Steps the model over the buffer's whole step units (hops, or a TFLite step's chunks) and
        decodes the emissions they complete; keeps the rest. ``final``: a last partial chunk of
        whole hops is zero-padded (rows past the stream's emissions are dropped), and a last step
        releases what a rolling norm holds back. Returns the new emissions (new, 99)."""
        from emgtf.inference.runners import check_finite

        buf, unit = self._buffer, self.step.unit_samples
        data = buf.data
        if final and len(data) % unit >= self.rule.hop_length:
            data = np.concatenate([data, np.zeros((unit - len(data) % unit, *data.shape[1:]), np.float32)])
        units = len(data) // unit
        flush = final and self.step.layout.held_frames > 0
        if units == 0 and not flush:
            return _NO_EMISSIONS
        outputs = []
        for first in range(0, units, self.step.max_units):
            samples = data[first * unit : min(units, first + self.step.max_units) * unit]
            self._state, log_probs = self.step(self._state, samples)
            outputs.append(log_probs)
            self.model_runs += 1
        if flush:
            self._state, log_probs = self.step(self._state, data[:0], final=True)
            outputs.append(log_probs)
            self.model_runs += 1
        self.frames_computed += units * unit // self.rule.hop_length
        used = min(units * unit, len(buf.data))
        buf.data = buf.data[used:]
        buf.start += used
        log_probs = np.concatenate(outputs) if len(outputs) > 1 else outputs[0]
        # The first warm-up outputs of a stream read the zero state, not the signal.
        emitted = log_probs[max(0, self.step.layout.warmup_emissions - self._step_outputs) :]
        self._step_outputs += len(log_probs)
        emitted = emitted[: self.rule.emissions(self.received) - self.next_emission]  # padding's
        if not len(emitted):
            return _NO_EMISSIONS
        check_finite(emitted[None], self.runner.source, frame_offset=self.next_emission)
        self._search.advance(emitted)
        self.next_emission += len(emitted)
        return emitted
