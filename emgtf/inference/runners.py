"""Running a model on raw EMG, whatever form it comes in: a Keras model or ``.keras`` checkpoint,
or an export folder (SavedModel, ``.keras``, ONNX, TFLite streaming step) as ``python -m emgtf.export`` writes it.

A ``Runner`` maps ``emg`` float32 (batch, samples, 2, 16) and optional true lengths (batch,)
to log-probabilities (batch, frames, 99) float32 and the emitted frames of each element (batch,)
int64. Validation, evaluate, transcribe and the export check all go through it, so they give the
same numbers for the same model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.charset import charset
from emgtf.errors import EmgtfError, first_line
from emgtf.inference.checkpoints import load_checkpoint
from emgtf.inference.export_folder import METADATA_FILE, STEP_SIGNATURE, StepLayout, read_metadata
from emgtf.models.emission import EmissionRule, emitted_frames


def forward(model, emg) -> np.ndarray:
    """Log-probabilities (batch, frames, 99) float32 of a batch, through the compiled predict step
    (an eager call would step recurrent layers frame by frame in Python). ``emg`` may be a tf.data
    tensor: it goes in as numpy, which every Keras backend takes (JAX's does not take tf tensors)."""
    return np.asarray(model.predict_on_batch(np.asarray(emg)), dtype=np.float32)


def compiled_loss(loss) -> Callable:
    """``loss.call`` (y_true, y_pred) -> per-example losses, compiled once per loss object and kept
    on it, so it lives as long as the loss (TensorFlow: a ``tf.function``; JAX: ``jax.jit``, one
    compilation per batch shape, the same few each epoch; torch: eager). Called eagerly, the
    loss's ops run one by one (TensorFlow's dense CTC, before ``ctc_nll`` took its C++ kernel, was
    about 5x slower eagerly: 1.0 against 0.18 s for 32 windows of 156 frames), which made the
    loss, not the forward pass, most of each epoch's validation."""
    import keras

    compiled = getattr(loss, "_emgtf_compiled_call", None)
    if compiled is None:
        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            compiled = tf.function(loss.call, reduce_retracing=True)
        elif backend == "jax":
            import jax

            compiled = jax.jit(loss.call)
        else:
            compiled = loss.call
        loss._emgtf_compiled_call = compiled
    return compiled


def check_finite(log_probs: np.ndarray, source: str, sessions=None, emitted=None, frame_offset: int = 0) -> None:
    """Raises a one-line EmgtfError if ``log_probs`` (batch, frames, 99) holds NaN or infinity in
    the frames that count (``emitted`` per element, all if None).

    A decoder turns NaN scores into some text without complaint, and ``max(x, nan)`` is x, so a
    broken model (NaN weights) would otherwise give plausible-looking, wrong error rates.
    ``source`` names the model ("checkpoint runs/x/best.keras"); ``sessions`` the batch's sessions;
    ``frame_offset`` is added to the frame reported (a chunk's first emission).
    """
    log_probs = np.asarray(log_probs)
    bad = ~np.isfinite(log_probs).all(axis=-1)
    if emitted is not None:
        frames = np.arange(log_probs.shape[1])[None, :]
        bad &= frames < np.asarray(emitted).reshape(-1, 1)
    if not bad.any():
        return
    b, frame = (int(v) for v in np.argwhere(bad)[0])
    where = f"session {sessions[b]}, " if sessions is not None else ""
    raise EmgtfError(
        f"{source}: non-finite log-probabilities ({where}frame {frame_offset + frame}); the model's "
        "weights or its input are broken (NaN or overflow), so no error rate is reported"
    )


def _full_lengths(emg: np.ndarray) -> np.ndarray:
    return np.full(len(emg), emg.shape[1], dtype=np.int64)


@dataclass
class Runner:
    """A loaded model. ``run(emg, lengths)`` -> (log_probs, emitted); ``lengths`` None means every
    element is ``samples`` long."""

    run: Callable[[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray]]
    rule: EmissionRule
    family: str
    source: str  # for messages: "SavedModel exports/x", "checkpoint runs/x/best.keras"
    model: object = None  # the Keras model, where there is one (chunked inference reads its layers)

    def __call__(self, emg, lengths=None) -> tuple[np.ndarray, np.ndarray]:
        return self.run(np.ascontiguousarray(emg, dtype=np.float32), lengths)

    def log_probs(self, emg: np.ndarray, *, session: str | None = None, frame_offset: int = 0) -> np.ndarray:
        """(emissions, 99) of one recording (samples, 2, 16), checked against the emission rule and
        to be finite (errors name ``session`` and the frame, counted from ``frame_offset``)."""
        emg = np.ascontiguousarray(emg, dtype=np.float32)
        if emg.ndim != 3 or emg.shape[1:] != (NUM_BANDS, NUM_CHANNELS):
            raise EmgtfError(
                f"EMG must have shape (samples, {NUM_BANDS}, {NUM_CHANNELS}), got {emg.shape}"
            )
        log_probs, emitted = self.run(emg[None], None)
        log_probs, emitted = log_probs[0], int(emitted[0])
        expected = self.rule.emissions(len(emg))
        if emitted != expected or log_probs.shape[0] < emitted or log_probs.shape[-1] != charset().num_classes:
            raise EmgtfError(
                f"{self.source}: the model emitted {emitted} frames of shape {log_probs.shape} for "
                f"{len(emg)} samples, but its emission rule ({self.rule.describe()}) says {expected}"
            )
        check_finite(log_probs[None, :emitted], self.source, None if session is None else [session],
                     frame_offset=frame_offset)
        return log_probs[:emitted]


def keras_runner(model, source: str | None = None) -> Runner:
    """A runner of a Keras model, through ``forward``."""

    def run(emg, lengths):
        log_probs = forward(model, emg)
        lengths = _full_lengths(emg) if lengths is None else lengths
        return log_probs, emitted_frames(model, lengths, log_probs.shape[1])

    return Runner(run, EmissionRule.from_model(model), model.name, source or f"model {model.name}", model)


def _saved_model_runner(directory: Path, rule: EmissionRule, family: str) -> Runner:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(directory))
    except Exception as e:  # TensorFlow raises OSError, ValueError, protobuf DecodeError, ...
        raise EmgtfError(f"{directory}: cannot load the SavedModel ({first_line(e)})") from None
    signatures = getattr(loaded, "signatures", {})
    serve = signatures.get("serving_default")
    if serve is None:
        raise EmgtfError(f"{directory}: the SavedModel has no serving_default signature")
    spec = serve.structured_input_signature[1].get("emg")
    if spec is None or spec.shape.rank != 4 or tuple(spec.shape[2:]) != (NUM_BANDS, NUM_CHANNELS):
        raise EmgtfError(
            f"{directory}: serving_default must take emg [batch, samples, {NUM_BANDS}, "
            f"{NUM_CHANNELS}], takes {spec}"
        )

    def run(emg, lengths):
        try:
            if lengths is None:
                out = serve(emg=tf.constant(emg))
            else:
                out = signatures["with_lengths"](
                    emg=tf.constant(emg), emg_lengths=tf.constant(np.asarray(lengths, np.int32))
                )
        except tf.errors.InvalidArgumentError as e:  # the signature's input checks
            import re

            found = re.search(r"assertion failed: \[([^\]]+)\]", e.message or "")
            raise EmgtfError(f"{directory}: {found.group(1) if found else first_line(e)}") from None
        return out["log_probs"].numpy(), out["emission_lengths"].numpy().astype(np.int64)

    return Runner(run, rule, family, f"SavedModel {directory}")


def _onnx_runner(path: Path, rule: EmissionRule, family: str) -> Runner:
    try:
        import onnxruntime
    except ImportError:
        raise EmgtfError("running an ONNX export needs onnxruntime (pip install 'emgtf[onnx]')") from None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types (InvalidGraph, Fail, ...)
        raise EmgtfError(f"{path}: onnxruntime cannot load the ONNX model ({first_line(e)})") from None

    def run(emg, lengths):
        if lengths is not None and not np.all(np.asarray(lengths) == emg.shape[1]):
            raise EmgtfError("the ONNX export takes full-length inputs only (no emg_lengths)")
        log_probs, emitted = session.run(["log_probs", "emission_lengths"], {"emg": emg})
        return log_probs, np.asarray(emitted, np.int64)

    return Runner(run, rule, family, f"ONNX export {path.parent}")


def run_step_stream(step, layout: StepLayout, emg: np.ndarray, num_emissions: int) -> np.ndarray:
    """Streams one recording (samples, 2, 16) through ``step(state, chunk) -> (next_state,
    log_probs)`` (numpy in and out) from a zero state; returns its ``num_emissions`` emissions
    (the emission rule's count for the recording)."""
    size = layout.chunk_samples
    padded = -(-len(emg) // size) * size
    emg = np.concatenate([emg, np.zeros((padded - len(emg), *emg.shape[1:]), np.float32)])
    state = np.zeros(layout.state_size, np.float32)
    outputs = []
    for start in range(0, padded, size):
        state, log_probs = step(state, emg[start : start + size])
        outputs.append(log_probs)
    # padded / hop rows >= samples // hop = warm-up + the recording's emissions
    stream = np.concatenate(outputs)
    return stream[layout.warmup_emissions : layout.warmup_emissions + num_emissions]


def tflite_interpreter(**kwargs):
    """A TFLite interpreter: LiteRT's (``ai_edge_litert``), where TensorFlow 2.21 moved it
    (``tf.lite.Interpreter`` warns that it is deprecated and will be deleted). TensorFlow's own
    is the fallback where the ``ai-edge-litert`` wheel does not exist (Windows)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter(**kwargs)


def tflite_step(model_path_or_content, threads: int | None = None):
    """``step(state, chunk) -> (next_state, log_probs)`` of a TFLite step model (a path or bytes),
    for ``run_step_stream``; ``threads``: the interpreter's (None: TFLite's default). A file
    the interpreter cannot load is a one-line EmgtfError."""
    if isinstance(model_path_or_content, bytes):
        interpreter = tflite_interpreter(model_content=model_path_or_content, num_threads=threads)
    else:
        try:
            interpreter = tflite_interpreter(model_path=str(model_path_or_content), num_threads=threads)
        except (ValueError, RuntimeError) as e:
            raise EmgtfError(f"{model_path_or_content}: LiteRT cannot load the TFLite model "
                             f"({first_line(e)})") from None
    runner = interpreter.get_signature_runner(STEP_SIGNATURE)

    def step(state, chunk):
        out = runner(state=state, chunk=chunk)
        return out["next_state"], out["log_probs"]

    return step


def _tflite_runner(path: Path, doc: dict, rule: EmissionRule, family: str) -> Runner:
    """The float32 TFLite streaming step, run over each element of a batch from a zero state."""
    layout = StepLayout.from_json(doc.get("streaming"), path.parent / METADATA_FILE)
    step = tflite_step(path)

    def run(emg, lengths):
        frames = rule.emissions(emg.shape[1])
        log_probs = np.stack([run_step_stream(step, layout, row, frames) for row in emg])
        lengths = _full_lengths(emg) if lengths is None else np.asarray(lengths, np.int64)
        return log_probs, np.asarray(rule.emissions(lengths), np.int64)

    return Runner(run, rule, family, f"TFLite export {path.parent}")


def load_runner(path) -> Runner:
    """A runner of an export folder (``python -m emgtf.export``) or a ``.keras`` checkpoint."""
    path = Path(path).expanduser()
    if not path.exists():
        raise EmgtfError(f"{path}: no such file or folder")
    if path.is_file():
        return keras_runner(load_checkpoint(path), f"checkpoint {path}")
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
        return _saved_model_runner(path, rule, family)
    model_file = path / str(doc.get("model_file", ""))
    if not model_file.is_file():
        raise EmgtfError(f"{path}: export.json names {doc.get('model_file')!r}, which is missing")
    if fmt == "onnx":
        return _onnx_runner(model_file, rule, family)
    if fmt == "tflite":
        return _tflite_runner(model_file, doc, rule, family)
    return keras_runner(load_checkpoint(model_file), f"Keras export {path}")
