"""``python -m emgtf.transcribe --model EXPORT_DIR_OR_CHECKPOINT SESSION.hdf5 [--decoder greedy|beam] [--lm PATH]``

Decodes a whole session file and prints what was typed:

    typed: the keys, as decoded: ⇧ shift, ⌫ backspace, ⏎ enter (a line break follows it)
    text:  the text those keys leave: backspaces applied, shift applied, enter as a new line
    truth: the same for the file's keystrokes (when it has any)
    CER:   error rates of the decoded keys against the keystrokes, as emgtf.evaluate computes them

The model is an export folder of ``python -m emgtf.export`` (a SavedModel runs with TensorFlow
alone; ``keras`` and ``onnx`` exports work too) or a ``.keras`` checkpoint.

Long sessions are run in chunks, so memory stays bounded, and stitched without seams. The model's
emissions are cut into runs of ``--chunk-seconds``; each chunk of signal is that run plus
``--context-seconds`` of emissions on both sides (clipped at the ends of the session), and only
the chunk's own run is kept. Chunks start at multiples of the emission stride (hop x subsampling
samples), so emission ``e`` of a chunk starting at sample ``s`` is emission ``s / stride + e`` of
the session (:class:`emgtf.export.EmissionRule`, read off the model); each chunk ends where its
last context emission is complete, which for unpadded convolutions (TDS: ``frames - 124``) is 124
frames after that emission's first frame. The stitched emissions are decoded together, so the
decoder never sees a chunk boundary. A session no longer than one chunk plus its context is run
whole, exactly as ``emgtf.evaluate`` runs it.

How close the chunked emissions come to a whole-session pass depends on what an emission sees:

- a bounded window of the signal (the TDS baseline: 125 frames = 1 s): equal, to float rounding,
  whatever the chunking;
- the whole chunk (recurrent layers): approximately; the context on both sides lets the state
  forget the chunk edge (a bidirectional LSTM: differences of 1e-6 with 2 s of context, 1e-1
  without);
- the whole chunk with absolute positions (the transformer): a different computation from the
  whole-session pass, which puts the model at positions far beyond its training windows; pass a
  ``--chunk-seconds`` longer than the session to reproduce ``emgtf.evaluate`` exactly.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.charset import BACKSPACE, ENTER, SHIFT
from emgtf.cli import run
from emgtf.errors import EmgtfError, SessionFileError
from emgtf.export import METADATA_FILE, EmissionRule, read_metadata

__all__ = ["Chunk", "Transcript", "Transcriber", "apply_keys", "load_transcriber", "plan_chunks",
           "session_log_probs", "transcribe"]

PROG = "python -m emgtf.transcribe"
DEFAULT_CHUNK_SECONDS = 60.0
DEFAULT_CONTEXT_SECONDS = 4.0


# --- the model, whatever its format -------------------------------------------------------------


@dataclass
class Transcriber:
    """A loaded model: ``log_probs(emg)`` maps raw EMG (samples, 2, 16) to (emissions, 99)."""

    run: object  # callable: (1, samples, 2, 16) float32 -> (log_probs (emissions, 99), emitted)
    rule: EmissionRule
    family: str
    source: str  # for messages: "SavedModel exports/x", "checkpoint runs/x/best.keras"

    def log_probs(self, emg: np.ndarray) -> np.ndarray:
        emg = np.ascontiguousarray(emg, dtype=np.float32)
        if emg.ndim != 3 or emg.shape[1:] != (NUM_BANDS, NUM_CHANNELS):
            raise EmgtfError(
                f"EMG must have shape (samples, {NUM_BANDS}, {NUM_CHANNELS}), got {emg.shape}"
            )
        log_probs, emitted = self.run(emg[None])
        expected = self.rule.emissions(len(emg))
        if emitted != expected or log_probs.shape[0] < emitted or log_probs.shape[-1] != 99:
            raise EmgtfError(
                f"{self.source}: the model emitted {emitted} frames of shape {log_probs.shape} for "
                f"{len(emg)} samples, but its emission rule ({self.rule.describe()}) says {expected}"
            )
        return log_probs[:emitted]


def _keras_runner(model):
    from emgtf.callbacks import forward
    from emgtf.models import emission_lengths

    def run(emg):
        # The predict step emgtf.evaluate uses, so both give the same numbers.
        log_probs = forward(model, emg)[0]
        return log_probs, min(int(emission_lengths(model, emg.shape[1])), log_probs.shape[0])

    return run


def _saved_model_runner(directory: Path):
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(directory))
    except Exception as e:  # TensorFlow raises OSError, ValueError, protobuf DecodeError, ...
        raise EmgtfError(f"{directory}: cannot load the SavedModel ({_first_line(e)})") from None
    signature = getattr(loaded, "signatures", {}).get("serving_default")
    if signature is None:
        raise EmgtfError(f"{directory}: the SavedModel has no serving_default signature")
    spec = signature.structured_input_signature[1].get("emg")
    if spec is None or spec.shape.rank != 4 or tuple(spec.shape[2:]) != (NUM_BANDS, NUM_CHANNELS):
        raise EmgtfError(
            f"{directory}: serving_default must take emg [batch, samples, {NUM_BANDS}, "
            f"{NUM_CHANNELS}], takes {spec}"
        )

    def run(emg):
        out = signature(emg=tf.constant(emg))
        return out["log_probs"].numpy()[0], int(out["emission_lengths"].numpy()[0])

    return run


def _onnx_runner(path: Path):
    try:
        import onnxruntime
    except ImportError:
        raise EmgtfError(
            "running an ONNX export needs onnxruntime (pip install 'emgtf[onnx]')"
        ) from None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:
        raise EmgtfError(f"{path}: cannot load the ONNX model ({_first_line(e)})") from None

    def run(emg):
        log_probs, emitted = session.run(["log_probs", "emission_lengths"], {"emg": emg})
        return log_probs[0], int(emitted[0])

    return run


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_transcriber(path) -> Transcriber:
    """An export folder (``python -m emgtf.export``) or a ``.keras`` checkpoint, ready to run."""
    from emgtf.charset import charset

    path = Path(path).expanduser()
    if not path.exists():
        raise EmgtfError(f"--model {path}: no such file or folder")
    if path.is_file():
        from emgtf.training import load_checkpoint

        model = load_checkpoint(path)
        rule = EmissionRule.from_model(model)
        return Transcriber(_keras_runner(model), rule, model.name, f"checkpoint {path}")
    doc = read_metadata(path)
    cs = charset()
    if doc["charset"]["keys"] != list(cs.chars) or doc["charset"].get("blank") != cs.blank:
        raise EmgtfError(
            f"{path / METADATA_FILE}: its charset is not emgtf's (98 keys in label order, blank 98)"
        )
    rule = EmissionRule.from_json(doc["emission"], path / METADATA_FILE)
    family = str(doc.get("family", "?"))
    fmt = doc["format"]
    if fmt == "saved_model":
        return Transcriber(_saved_model_runner(path), rule, family, f"SavedModel {path}")
    model_file = path / str(doc.get("model_file", ""))
    if not model_file.is_file():
        raise EmgtfError(f"{path}: export.json names {doc.get('model_file')!r}, which is missing")
    if fmt == "onnx":
        return Transcriber(_onnx_runner(model_file), rule, family, f"ONNX export {path}")
    from emgtf.training import load_checkpoint

    model = load_checkpoint(model_file)
    return Transcriber(_keras_runner(model), rule, model.name, f"Keras export {path}")


# --- chunks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """Samples ``[start, stop)`` of the session; keeps its emissions ``[keep_start, keep_stop)``,
    which are the session's emissions ``[first, first + keep_stop - keep_start)``."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int
    first: int


def plan_chunks(
    num_samples: int, rule: EmissionRule, *, chunk_emissions: int, context_emissions: int
) -> list[Chunk]:
    """Chunks that together give each of the session's emissions exactly once, in order.

    Chunk k owns the session's emissions ``[k P, (k + 1) P)`` (P = ``chunk_emissions``) and reads
    ``context_emissions`` more on each side. A session no longer than one chunk with its context
    is one chunk: the whole session, exactly as ``emgtf.evaluate`` runs it.
    """
    if chunk_emissions < 1 or context_emissions < 0:
        raise EmgtfError(f"chunks need chunk_emissions >= 1 and context_emissions >= 0, got "
                         f"{chunk_emissions} and {context_emissions}")
    total = rule.emissions(num_samples)
    if total <= chunk_emissions + context_emissions:
        return [Chunk(0, num_samples, 0, total, 0)]
    chunks = []
    for first in range(0, total, chunk_emissions):
        last = min(first + chunk_emissions, total)
        read_from = max(0, first - context_emissions)
        read_to = min(total, last + context_emissions)
        start = read_from * rule.stride
        # The last chunk runs to the end of the session, as the whole-session pass does.
        stop = num_samples if read_to == total else start + rule.samples_for(read_to - read_from)
        chunks.append(Chunk(start, stop, first - read_from, last - read_from, first))
    return chunks


def _check_chunking(chunk_seconds: float, context_seconds: float) -> None:
    if not chunk_seconds > 0:
        raise EmgtfError(f"--chunk-seconds must be > 0, got {chunk_seconds}")
    if not context_seconds >= 0:
        raise EmgtfError(f"--context-seconds must be >= 0, got {context_seconds}")


def _chunk_sizes(rule: EmissionRule, chunk_seconds: float, context_seconds: float) -> tuple[int, int]:
    """(emissions kept per chunk, context emissions on each side) of the durations given."""
    _check_chunking(chunk_seconds, context_seconds)
    rate = rule.emission_rate
    return max(1, round(chunk_seconds * rate)), math.ceil(context_seconds * rate)


def session_log_probs(
    transcriber: Transcriber,
    session,
    *,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    context_seconds: float = DEFAULT_CONTEXT_SECONDS,
) -> tuple[np.ndarray, list[Chunk]]:
    """The whole session's log-probabilities (emissions, 99), stitched from chunks, and the chunks.

    ``session`` is an open :class:`emgtf.data.EMGSession`.
    """
    rule = transcriber.rule
    num_samples = len(session)
    if rule.emissions(num_samples) == 0:
        raise SessionFileError(
            session.path,
            f"{num_samples} samples is too short for {transcriber.family}, which needs at least "
            f"{rule.samples_for(1)} samples ({rule.samples_for(1) / rule.sample_rate:.2f} s)",
        )
    chunk_emissions, context_emissions = _chunk_sizes(rule, chunk_seconds, context_seconds)
    chunks = plan_chunks(
        num_samples, rule, chunk_emissions=chunk_emissions, context_emissions=context_emissions
    )
    parts = []
    for chunk in chunks:
        emg = session.read(chunk.start, chunk.stop)
        finite = np.isfinite(emg).all(axis=(1, 2))
        if not finite.all():
            bad = chunk.start + int(np.flatnonzero(~finite)[0])
            raise SessionFileError(session.path, f"EMG sample {bad} is not finite (NaN or infinity)")
        parts.append(transcriber.log_probs(emg)[chunk.keep_start : chunk.keep_stop])
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
    """What :func:`transcribe` found. ``target`` is None when the file has no keystrokes."""

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
                f"{r['target_chars']} keys)"
            )
        return "\n".join(lines)


def make_decoder(kind: str | None, lm=None):
    """Greedy, or beam search (the reference's settings) with the KenLM file ``lm`` if given;
    ``kind`` None means beam search when there is an LM, else greedy."""
    from emgtf.decode import make_decoder as build

    kind = kind or ("beam" if lm is not None else "greedy")
    if kind == "greedy":
        if lm is not None:
            raise EmgtfError("--lm needs --decoder beam (greedy decoding uses no language model)")
        return build("greedy")
    return build("beam", lm_path=lm)


def _describe_decoder(decoder) -> str:
    lm = getattr(decoder, "lm", None)
    if not hasattr(decoder, "beam_size"):
        return "greedy decoding"
    with_lm = f" with LM {lm.path}" if lm is not None else ""
    return f"beam search (beam {decoder.beam_size}){with_lm}"


def transcribe(
    transcriber: Transcriber,
    session_path,
    *,
    decoder=None,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    context_seconds: float = DEFAULT_CONTEXT_SECONDS,
) -> Transcript:
    """Decodes one session file; with keystrokes in it, also its error rates (as emgtf.evaluate)."""
    from emgtf.data import EMGSession
    from emgtf.metrics import error_rates

    decoder = decoder if decoder is not None else make_decoder("greedy")
    with EMGSession(session_path) as session:
        log_probs, chunks = session_log_probs(
            transcriber, session, chunk_seconds=chunk_seconds, context_seconds=context_seconds
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


# --- command line ------------------------------------------------------------------------------


def _parser():
    from emgtf import config as config_lib

    parser = config_lib.ArgumentParser(
        prog=PROG,
        description="Decode the typing in a session file with an exported model or a checkpoint; "
        "print the keys, the text they leave, and the CER when the file has keystrokes.",
        epilog="examples:\n"
        "  python -m emgtf.transcribe --model exports/X session.hdf5\n"
        "  python -m emgtf.transcribe --model runs/X/best.keras session.hdf5 --lm default",
    )
    parser.add_argument("session", help="session file (.hdf5, emg2qwerty format)")
    parser.add_argument(
        "--model", required=True, help="export folder (python -m emgtf.export) or .keras checkpoint"
    )
    parser.add_argument("--decoder", choices=("greedy", "beam"), default=None,
                        help="CTC decoder (default: greedy, or beam when --lm is given)")
    parser.add_argument("--lm", default=None,
                        help="KenLM character model for beam search: an ARPA/binary file, or 'default'")
    parser.add_argument(
        "--chunk-seconds", type=float, default=DEFAULT_CHUNK_SECONDS,
        help=f"emissions kept per chunk, in seconds (default {DEFAULT_CHUNK_SECONDS:g})",
    )
    parser.add_argument(
        "--context-seconds", type=float, default=DEFAULT_CONTEXT_SECONDS,
        help=f"extra signal on each side of a chunk (default {DEFAULT_CONTEXT_SECONDS:g})",
    )
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    decoder = make_decoder(args.decoder, args.lm)
    _check_chunking(args.chunk_seconds, args.context_seconds)
    from emgtf.data import EMGSession

    with EMGSession(args.session):  # a bad file fails before the model loads
        pass
    transcriber = load_transcriber(args.model)
    transcript = transcribe(
        transcriber,
        args.session,
        decoder=decoder,
        chunk_seconds=args.chunk_seconds,
        context_seconds=args.context_seconds,
    )
    seconds = transcript.num_samples / transcriber.rule.sample_rate
    print(
        f"emgtf.transcribe: {transcript.session} ({seconds:.1f} s), {transcriber.family} from "
        f"{transcriber.source}, {_describe_decoder(decoder)}, {len(transcript.chunks)} chunk(s)",
        file=sys.stderr,
        flush=True,
    )
    print(transcript.render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(main, "emgtf.transcribe"))
