"""Transcribing one session file with any runnable model (see ``emgtf.inference.runners``);
``python -m emgtf.transcribe`` prints a ``Transcript``:

    typed: the keys, as decoded: ⇧ shift, ⌫ backspace, ⏎ enter (a line break follows it)
    text:  the text those keys leave: backspaces applied, shift applied, enter as a new line
    truth: the same for the file's keystrokes (when it has any)
    CER:   error rates of the decoded keys against the keystrokes, as emgtf.evaluate computes them

The model is an export folder of ``python -m emgtf.export`` (a SavedModel runs with TensorFlow
alone; ``keras`` and ``onnx`` exports work too) or a ``.keras`` checkpoint.

Long sessions are run in chunks, so memory stays bounded, and stitched without seams. The model's
emissions are cut into runs of ``chunk_seconds``; each chunk of signal is that run plus
``context_seconds`` of emissions on both sides (clipped at the ends of the session), and only
the chunk's own run is kept. Chunks start at multiples of the emission stride (hop x subsampling
samples), so emission ``e`` of a chunk starting at sample ``s`` is emission ``s / stride + e`` of
the session (``emgtf.models.EmissionRule``, read off the model); each chunk ends where its
last context emission is complete, which for unpadded convolutions (TDS: ``frames - 124``) is 124
frames after that emission's first frame. The stitched emissions are decoded together, so the
decoder never sees a chunk boundary. A session no longer than one chunk plus its context is run
whole, exactly as ``emgtf.evaluate`` runs it.

A ``.keras`` checkpoint is chunked by ``emgtf.inference.chunked.SessionForward``, as
``emgtf.evaluate`` is: where its layers' declared reach is finite (TDS, TCN, ConvResNet) the chunks
carry exactly the context that reach needs (``context_seconds`` does not apply) and SplashNet's
rolling norm goes through the incremental step, so the emissions equal the whole-session pass;
other models are chunked as below. An export has no layers to read: chunked as below.

How close the chunked emissions come to a whole-session pass depends on what an emission sees:

- a bounded window of the signal (the TDS baseline: 125 frames = 1 s): equal, to float rounding,
  whatever the chunking;
- statistics from the session's start (SplashNet's rolling norm): each chunk normalised by its
  own (an export only; a checkpoint steps through the session);
- the whole chunk (recurrent layers): approximately; the context on both sides lets the state
  forget the chunk edge (a bidirectional LSTM: differences of 1e-6 with 2 s of context, 1e-1
  without);
- the whole chunk with absolute positions (the transformer): a different computation from the
  whole-session pass, which puts the model at positions far beyond its training windows; pass a
  ``chunk_seconds`` longer than the session to reproduce ``emgtf.evaluate`` exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from emgtf.charset import BACKSPACE, ENTER, SHIFT
from emgtf.errors import EmgtfError, SessionFileError
from emgtf.inference.chunks import Chunk, plan_chunks

if TYPE_CHECKING:  # the runners import Keras; this module is imported by the CLI before it
    from emgtf.inference.runners import Runner
    from emgtf.models.emission import EmissionRule

__all__ = ["Chunk", "Transcript", "apply_keys", "plan_chunks", "session_log_probs", "transcribe"]

DEFAULT_CHUNK_SECONDS = 60.0
DEFAULT_CONTEXT_SECONDS = 4.0


def check_chunking(chunk_seconds: float, context_seconds: float) -> None:
    if not chunk_seconds > 0:
        raise EmgtfError(f"chunk_seconds must be > 0, got {chunk_seconds}")
    if not context_seconds >= 0:
        raise EmgtfError(f"context_seconds must be >= 0, got {context_seconds}")


def _chunk_sizes(rule: EmissionRule, chunk_seconds: float, context_seconds: float) -> tuple[int, int]:
    """(emissions kept per chunk, context emissions on each side) of the durations given."""
    check_chunking(chunk_seconds, context_seconds)
    rate = rule.emission_rate
    return max(1, round(chunk_seconds * rate)), math.ceil(context_seconds * rate)


def session_log_probs(
    runner: Runner,
    session,
    *,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    context_seconds: float = DEFAULT_CONTEXT_SECONDS,
) -> tuple[np.ndarray, list[Chunk]]:
    """The whole session's log-probabilities (emissions, 99), stitched from chunks, and the chunks.

    ``session`` is an open ``emgtf.data.EMGSession``.
    """
    rule = runner.rule
    num_samples = len(session)
    if rule.emissions(num_samples) == 0:
        raise SessionFileError(
            session.path,
            f"{num_samples} samples is too short for {runner.family}, which needs at least "
            f"{rule.samples_for(1)} samples ({rule.samples_for(1) / rule.sample_rate:.2f} s)",
        )
    model = getattr(runner, "model", None)
    if model is not None:  # exact chunks where the layers' reach allows, else approximate ones
        from emgtf.inference.chunked import Chunking, SessionForward

        check_chunking(chunk_seconds, context_seconds)
        forward = SessionForward(model, Chunking(seconds=chunk_seconds, approximate=True,
                                                 context_seconds=context_seconds), source=runner.source)
        return forward.log_probs(session), forward.plan(num_samples)
    from emgtf.inference.chunked import read_checked

    chunk_emissions, context_emissions = _chunk_sizes(rule, chunk_seconds, context_seconds)
    chunks = plan_chunks(
        num_samples, rule, chunk_emissions=chunk_emissions, context_emissions=context_emissions
    )
    parts = []
    for chunk in chunks:
        emg = read_checked(session, chunk.start, chunk.stop)
        log_probs = runner.log_probs(emg, session=str(session.path), frame_offset=chunk.first - chunk.keep_start)
        parts.append(log_probs[chunk.keep_start : chunk.keep_stop])
    return np.concatenate(parts, axis=0), chunks


# --- text --------------------------------------------------------------------------------------


def apply_keys(keys: str) -> str:
    """The text that typing ``keys`` leaves: ⌫ deletes the previous character, ⇧ capitalises the
    next letter (and is not itself text), ⏎ starts a new line."""
    out: list[str] = []
    shift = False
    for key in keys:
        if key == BACKSPACE:
            if out:
                out.pop()
            shift = False
        elif key == SHIFT:
            shift = True
        else:
            char = "\n" if key == ENTER else key
            out.append(char.upper() if shift else char)
            shift = False
    return "".join(out)


def _block(label: str, text: str, width: int = 7) -> str:
    """``label`` then ``text``, its later lines indented under the first."""
    indent = "\n" + " " * width
    return f"{label:<{width}}" + indent.join(text.split("\n"))


def _shown_keys(keys: str) -> str:
    return keys.replace(ENTER, ENTER + "\n")


@dataclass
class Transcript:
    """What ``transcribe`` found. ``target`` is None when the file has no keystrokes."""

    session: str
    prediction: str  # decoded keys
    target: str | None
    rates: dict | None
    num_samples: int
    chunks: list[Chunk] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            _block("typed:", _shown_keys(self.prediction)),
            _block("text:", apply_keys(self.prediction)),
        ]
        if self.target is not None:
            lines.append(_block("truth:", apply_keys(self.target)))
            r = self.rates
            lines.append(
                f"CER:   {r['CER']:.2f} % (IER {r['IER']:.2f}, DER {r['DER']:.2f}, SER {r['SER']:.2f}; "
                f"{r['target_chars']} keys; rendered CER {r['rendered_CER']:.2f} %)"
            )
        return "\n".join(lines)


def transcribe(
    runner: Runner,
    session_path,
    *,
    decoder=None,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    context_seconds: float = DEFAULT_CONTEXT_SECONDS,
) -> Transcript:
    """Decodes one session file; with keystrokes in it, also its error rates (as emgtf.evaluate)."""
    from emgtf.data import EMGSession
    from emgtf.decoding import GreedyDecoder
    from emgtf.metrics import error_rates

    decoder = decoder if decoder is not None else GreedyDecoder()
    with EMGSession(session_path) as session:
        log_probs, chunks = session_log_probs(
            runner, session, chunk_seconds=chunk_seconds, context_seconds=context_seconds
        )
        target = None
        if session.keystrokes:
            times = session.timestamps
            # The labels emgtf.evaluate uses: keys pressed between the first and the last sample.
            target = session.ground_truth(float(times[0]), float(times[-1])).text
        name, num_samples = session.session_name, len(session)
    prediction = decoder.decode_batch(log_probs[None], [len(log_probs)])[0]
    rates = error_rates([prediction], [target]) if target is not None else None
    return Transcript(name, prediction, target, rates, num_samples, chunks)
