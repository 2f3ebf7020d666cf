"""The streaming step of an export: ``(state, chunk) -> (next_state, log_probs)``, for devices.

A device that streams EMG calls the step once per chunk of ``chunk_samples`` samples (fixed: a
compiled TFLite model has fixed shapes) and feeds ``next_state`` back as the next call's
``state``. The step is ``emgtf.models.streaming.incremental_step`` (the state, its warm-up
and which models have one are described there) traced for that chunk size, so its cost per chunk
is that of ``chunk_samples / hop_length`` frames.

Shapes (no batch dimension): ``state`` float32 ``[state_size]``, ``chunk`` float32
``[chunk_samples, 2, 16]`` (raw EMG, left band first) -> ``next_state`` float32 ``[state_size]``,
``log_probs`` float32 ``[chunk_samples / hop_length, 99]``. Start from a zero state and drop the
first ``warmup_emissions`` outputs; a stream ending in a partial chunk is padded with zeros and
the recording's emissions are its first ``emissions(samples)`` (the emission rule).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

from emgtf import SAMPLE_RATE
from emgtf.checks import is_int
from emgtf.data import EMGSession
from emgtf.decoding import ctc_greedy
from emgtf.errors import EmgtfError, first_line
from emgtf.export.formats import unsupported
from emgtf.inference.export_folder import STEP_SIGNATURE, TFLITE_FILES, StepLayout
from emgtf.inference.runners import keras_runner, run_step_stream, tflite_interpreter, tflite_step
from emgtf.metrics import error_rates
from emgtf.models.streaming import state_layout
from emgtf.synth import generate_session

__all__ = ["DEFAULT_CHUNK_SAMPLES", "DEFAULT_INT8", "INT8_MODES", "int8_mode", "step_layout", "write_tflite"]

DEFAULT_CHUNK_SAMPLES = 80  # 40 ms at 2 kHz
# What model_int8.tflite quantises (export option tflite_int8; "none" writes no int8 file).
INT8_MODES = {
    "weights": "int8 weights, float32 activations (TFLite dynamic-range quantisation, no calibration)",
    "static": "int8 weights, and int8 activations calibrated on a generated session in the fully "
    "connected layers; every other op float32",
}
DEFAULT_INT8 = "weights"
# The ops a static int8 model runs in int8. Measured on the trained streaming preset (small_tds,
# greedy CER 6.02 % float on a generated session), one group of ops in int8 at a time: the
# LayerNorms raise it to 12.78 %, the TDS convolutions to 7.52 %, the rotation-invariant MLP's
# gathers and means to 8.27 %; int8 log_softmax clips log-probabilities below -16; all the fully
# connected layers together cost nothing (6.02 %). Everything else, the state included, stays
# float32 (an int8 state would share one scale between the raw samples, about +-240, and the
# cached TDS frames, about +-10).
STATIC_INT8_OPS = ("FULLY_CONNECTED",)
# Generated sessions (emgtf.synth, data set seed 0, user 0): static int8 calibration on one, the
# cost of quantisation measured on another.
CALIBRATION_SESSION, EVALUATION_SESSION = 0, 1
CALIBRATION_MINUTES, EVALUATION_MINUTES = 1 / 3, 0.5


def int8_mode(value) -> str | None:
    """The ``tflite_int8`` option as a mode of ``INT8_MODES``, or None for no int8 model
    ("none" or false); raises EmgtfError (one line) for anything else."""
    if value is False or value is None or value == "none":
        return None
    if isinstance(value, str) and value in INT8_MODES:
        return value
    raise EmgtfError(f"tflite_int8 must be one of {', '.join(INT8_MODES)} or none, got {value!r}")


def step_layout(model, chunk_samples: int = DEFAULT_CHUNK_SAMPLES) -> StepLayout:
    """The state layout of ``model``'s streaming step (``emgtf.models.streaming.state_layout``)
    for chunks of ``chunk_samples``; raises EmgtfError (one line) for a model or chunk size that
    has none."""
    core = state_layout(model)
    hop = core.hop_length
    if core.held_frames:
        raise EmgtfError(
            f"model '{model.name}' has no fixed-shape streaming step: its RollingTimeNorm holds back "
            f"the first {core.held_frames} frames and releases them at once with the "
            f"{core.held_frames}th, so the rows a step returns vary (none, then up to "
            f"{core.held_frames} + a chunk's, then a chunk's), which a fixed-shape signature (TFLite) "
            "cannot give; stream its .keras checkpoint (python -m emgtf.stream)"
        )
    whole = is_int(chunk_samples) or isinstance(chunk_samples, np.integer)
    if not whole or chunk_samples < hop or chunk_samples % hop:
        raise EmgtfError(
            f"stream_chunk_samples must be a positive multiple of the hop length ({hop} samples), "
            f"got {chunk_samples!r}"
        )
    return StepLayout(hop, core.parts, core.warmup_emissions, lost_frames=core.lost_frames,
                      chunk_samples=int(chunk_samples), frames_per_step=int(chunk_samples) // hop)


def _generated_session(folder: Path, session: int, minutes: float):
    """(emg, keystroke text) of a generated session."""
    info = generate_session(folder, seed=0, user=0, session=session, minutes=minutes)
    with EMGSession(info.path) as recording:
        times = recording.timestamps
        return recording.read(), recording.ground_truth(float(times[0]), float(times[-1])).text


def _op_dtypes(flat: bytes) -> list[tuple[str, list, list]]:
    """(op type, dtypes of its inputs, of its outputs) of each op of a TFLite model."""
    interpreter = tflite_interpreter(model_content=flat)
    dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    # The op list has no public API; tf.lite's QuantizationDebugger reads it the same way.
    return [(op["op_name"], [dtypes[i] for i in op["inputs"] if i >= 0], [dtypes[i] for i in op["outputs"]])
            for op in interpreter._get_ops_details()]


def _int8_ops(flat: bytes) -> dict:
    """The op types of a TFLite model that read int8 tensors (weights, or activations) and that
    write int8 activations, QUANTIZE and DEQUANTIZE aside."""
    ops = [(kind, i, o) for kind, i, o in _op_dtypes(flat) if kind not in ("QUANTIZE", "DEQUANTIZE")]
    return {"int8_inputs": sorted({kind for kind, i, _ in ops if np.int8 in i}),
            "int8_outputs": sorted({kind for kind, _, o in ops if np.int8 in o})}


def write_tflite(model, layout: StepLayout, directory: Path, saved_model: Path, *, int8: str | None) -> dict:
    """Writes ``model.tflite`` (float32) and, with ``int8`` (a mode of ``INT8_MODES``),
    ``model_int8.tflite`` from a SavedModel that has the step signature; returns what
    export.json records of them: the files and their sizes and, for int8, which ops read and
    write int8 and the cost of quantisation measured on a generated session against the Keras
    model (largest and mean log-probability difference, greedy CER of each)."""
    import tensorflow as tf

    def converter():
        return tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[STEP_SIGNATURE])

    try:
        flat = converter().convert()
    except Exception as e:  # the converter raises ConverterError, ValueError, ...
        raise unsupported(model, "tflite", f"the TFLite converter failed ({first_line(e)})") from None
    (directory / TFLITE_FILES["float32"]).write_bytes(flat)
    doc = {"files": {"float32": TFLITE_FILES["float32"]}, "bytes": {"float32": len(flat)}}
    if int8 is None:
        return doc
    with tempfile.TemporaryDirectory(prefix="emgtf-int8-") as folder:
        emg, target = _generated_session(Path(folder), EVALUATION_SESSION, EVALUATION_MINUTES)
        calibration = None
        if int8 == "static":
            calibration, _ = _generated_session(Path(folder), CALIBRATION_SESSION, CALIBRATION_MINUTES)
    float_step = tflite_step(flat)
    quantizing = converter()
    quantizing.optimizations = [tf.lite.Optimize.DEFAULT]
    if calibration is None:  # dynamic range: weights only
        quantized = quantizing.convert()
    else:
        def representative():
            # The states of a real stream, not zeros: each chunk with the state the stream gives it.
            state, size = np.zeros(layout.state_size, np.float32), layout.chunk_samples
            for start in range(0, len(calibration) - size + 1, size):
                chunk = calibration[start : start + size]
                yield {"state": state, "chunk": chunk}
                state, _ = float_step(state, chunk)

        quantizing.representative_dataset = representative
        # Only the debugger's options can keep op types out of the quantisation.
        float_ops = sorted({kind for kind, _, _ in _op_dtypes(flat)} - set(STATIC_INT8_OPS))
        with warnings.catch_warnings():
            # The debugger builds tf.lite.Interpreter itself, which warns that it is deprecated; no
            # LiteRT counterpart of the debugger exists, and emgtf runs the result through LiteRT.
            warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated")
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=quantizing, debug_dataset=representative,
                debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=float_ops),
            )
            quantized = debugger.get_nondebug_quantized_model()
    (directory / TFLITE_FILES["int8"]).write_bytes(quantized)
    doc["files"]["int8"] = TFLITE_FILES["int8"]
    doc["bytes"]["int8"] = len(quantized)
    doc["int8"] = {"mode": int8, "what": INT8_MODES[int8], **_int8_ops(quantized)}

    expected = keras_runner(model).log_probs(emg)
    measured = {"keras": expected}
    for kind, step in (("float32", float_step), ("int8", tflite_step(quantized))):
        measured[kind] = run_step_stream(step, layout, emg, len(expected))
    cer = {kind: error_rates(ctc_greedy(lp[None], [len(lp)]), [target])["CER"] for kind, lp in measured.items()}
    cost = {
        "session": f"generated (emgtf.synth seed 0, user 0, session {EVALUATION_SESSION}), "
        f"{len(emg) / SAMPLE_RATE:g} s",
        "float_max_abs_log_prob_difference": float(np.abs(measured["float32"] - expected).max()),
        "int8_max_abs_log_prob_difference": float(np.abs(measured["int8"] - expected).max()),
        "int8_mean_abs_log_prob_difference": float(np.abs(measured["int8"] - expected).mean()),
        "greedy_cer": cer,
        "greedy_cer_difference_int8": cer["int8"] - cer["keras"],
    }
    if calibration is not None:
        cost["calibration"] = (f"generated session {CALIBRATION_SESSION} of the same user, "
                               f"{len(calibration) / SAMPLE_RATE:g} s, {len(calibration) // layout.chunk_samples} steps")
    doc["int8_accuracy_cost"] = cost
    return doc
