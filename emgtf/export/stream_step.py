"""The streaming step of an export: ``(state, chunk) -> (next_state, log_probs)``, for devices.

A device that streams EMG calls the step once per chunk of ``chunk_samples`` samples (fixed: a
compiled TFLite model has fixed shapes) and feeds ``next_state`` back as the next call's
``state``. The step is :func:`emgtf.models.streaming.incremental_step` (the state, its warm-up
and which models have one are described there) traced for that chunk size, so its cost per chunk
is that of ``chunk_samples / hop_length`` frames.

Shapes (no batch dimension): ``state`` float32 ``[state_size]``, ``chunk`` float32
``[chunk_samples, 2, 16]`` (raw EMG, left band first) -> ``next_state`` float32 ``[state_size]``,
``log_probs`` float32 ``[chunk_samples / hop_length, 99]``. Start from a zero state and drop the
first ``warmup_emissions`` outputs; a stream ending in a partial chunk is padded with zeros and
the recording's emissions are its first ``emissions(samples)`` (the emission rule).
"""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emgtf import NUM_BANDS, NUM_CHANNELS, SAMPLE_RATE
from emgtf.errors import EmgtfError
from emgtf.export.metadata import MODEL_FILES
from emgtf.models.streaming import StateLayout

__all__ = [
    "DEFAULT_CHUNK_SAMPLES", "StepLayout", "run_step_stream", "step_function", "step_layout",
    "tflite_step", "write_tflite",
]

DEFAULT_CHUNK_SAMPLES = 80  # 40 ms at 2 kHz
STEP_SIGNATURE = "stream_step"
STEP_INPUTS = ["state", "chunk"]
TFLITE_FILES = {"float32": MODEL_FILES["tflite"], "int8": "model_int8.tflite"}
# Generated sessions (emgtf.synth, data set seed 0, user 0): int8 calibration on one, the cost of
# quantisation measured on another.
CALIBRATION_SESSION, EVALUATION_SESSION = 0, 1
CALIBRATION_MINUTES, EVALUATION_MINUTES = 1 / 3, 0.5
# The raw-signal part of the step (state and chunk joined) and the spectrogram stay float32 in
# the int8 model: raw EMG and log10 power span a range that 256 levels resolve badly (measured on
# the tiny test TDS: int8 throughout moves log-probabilities by up to 2.1, this way by 0.2).
_RAW_SCOPE = "raw_signal"

@dataclass(frozen=True)
class StepLayout(StateLayout):
    """The :class:`~emgtf.models.streaming.StateLayout` of a step traced for chunks of
    ``chunk_samples`` (``frames_per_step`` hops)."""

    chunk_samples: int = 0
    frames_per_step: int = 0

    @classmethod
    def from_json(cls, doc, where) -> "StepLayout":
        """The layout export.json's ``streaming`` entry records (``where`` names the file)."""
        try:
            parts = tuple((str(p["name"]), tuple(int(n) for n in p["shape"])) for p in doc["state_layout"])
            chunk, frames = int(doc["chunk_samples"]), int(doc["frames_per_step"])
            hop, warmup = chunk // frames, int(doc["warmup_emissions"])
            layout = cls(hop, parts, warmup, lost_frames=warmup - parts[0][1][0] // hop,
                         chunk_samples=chunk, frames_per_step=frames)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError):
            raise EmgtfError(f"{where}: 'streaming' does not describe a streaming step") from None
        if layout.state_size != doc.get("state_size"):
            raise EmgtfError(f"{where}: 'streaming.state_size' disagrees with its state_layout")
        return layout

    def to_json(self) -> dict:
        offsets, at = [], 0
        for name, shape in self.parts:
            offsets.append({"name": name, "shape": list(shape), "offset": at})
            at += math.prod(shape)
        return {
            "signature": STEP_SIGNATURE,
            "chunk_samples": self.chunk_samples,
            "inputs": {"state": f"float32 [{self.state_size}]",
                       "chunk": f"float32 [{self.chunk_samples}, {NUM_BANDS}, {NUM_CHANNELS}]"},
            "outputs": {"next_state": f"float32 [{self.state_size}]",
                        "log_probs": f"float32 [{self.frames_per_step}, 99]"},
            "state_size": self.state_size,
            "frames_per_step": self.frames_per_step,
            "state_layout": offsets,
            "initial_state": "zeros",
            "warmup_emissions": self.warmup_emissions,
            "note": "feed next_state back as state; drop the first warmup_emissions log_probs rows "
            "of a stream; pad a last partial chunk with zeros and keep the emission rule's count",
        }


def step_layout(model, chunk_samples: int = DEFAULT_CHUNK_SAMPLES) -> StepLayout:
    """The state layout of ``model``'s streaming step (:func:`emgtf.models.streaming.state_layout`)
    for chunks of ``chunk_samples``; raises EmgtfError (one line) for a model or chunk size that
    has none."""
    from emgtf.models.streaming import state_layout

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
    if isinstance(chunk_samples, bool) or not isinstance(chunk_samples, (int, np.integer)) \
            or chunk_samples < hop or chunk_samples % hop:
        raise EmgtfError(
            f"stream_chunk_samples must be a positive multiple of the hop length ({hop} samples), "
            f"got {chunk_samples!r}"
        )
    return StepLayout(hop, core.parts, core.warmup_emissions, lost_frames=core.lost_frames,
                      chunk_samples=int(chunk_samples), frames_per_step=int(chunk_samples) // hop)


def step_function(model, layout: StepLayout):
    """The step (:func:`emgtf.models.streaming.incremental_step`) as a ``tf.function`` with its
    fixed input signature (``state``, ``chunk``) returning ``{"next_state", "log_probs"}``."""
    import tensorflow as tf

    from emgtf.models.streaming import incremental_step

    def step(state, chunk):
        next_state, log_probs = incremental_step(model, layout, state, chunk, raw_scope=_RAW_SCOPE)
        return {"next_state": next_state, "log_probs": log_probs}

    signature = [
        tf.TensorSpec([layout.state_size], tf.float32, name="state"),
        tf.TensorSpec([layout.chunk_samples, NUM_BANDS, NUM_CHANNELS], tf.float32, name="chunk"),
    ]
    return tf.function(step, input_signature=signature), signature


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


def tflite_step(model_path_or_content):
    """``step(state, chunk) -> (next_state, log_probs)`` of a TFLite step model (a path or bytes),
    for :func:`run_step_stream`."""
    import tensorflow as tf

    if isinstance(model_path_or_content, bytes):
        interpreter = tf.lite.Interpreter(model_content=model_path_or_content)
    else:
        interpreter = tf.lite.Interpreter(model_path=str(model_path_or_content))
    runner = interpreter.get_signature_runner(STEP_SIGNATURE)

    def step(state, chunk):
        out = runner(state=state, chunk=chunk)
        return out["next_state"], out["log_probs"]

    return step


def _generated_session(folder: Path, session: int, minutes: float):
    """(emg, keystroke text) of a generated session."""
    from emgtf.data import EMGSession
    from emgtf.synth import generate_session

    info = generate_session(folder, seed=0, user=0, session=session, minutes=minutes)
    with EMGSession(info.path) as recording:
        times = recording.timestamps
        return recording.read(), recording.ground_truth(float(times[0]), float(times[-1])).text


def _spectrogram_tensors(flat: bytes, spectrogram_name: str) -> list[str]:
    """Names of the float model's tensors computed in the raw-signal scope or the spectrogram
    layer (TFLite names fused tensors "a;b"; Keras may suffix the scope with _1)."""
    import tensorflow as tf

    scope = re.compile(rf"({re.escape(_RAW_SCOPE)}|{re.escape(spectrogram_name)})(_\d+)?")
    names = []
    for tensor in tf.lite.Interpreter(model_content=flat).get_tensor_details():
        if any(scope.fullmatch(part.split("/")[0]) for part in tensor["name"].split(";")):
            names.append(tensor["name"])
    return names


def write_tflite(model, layout: StepLayout, directory: Path, saved_model: Path, *, int8: bool) -> dict:
    """Writes ``model.tflite`` (float32) and, with ``int8``, ``model_int8.tflite`` (post-training
    int8 quantisation calibrated on a generated session) from a SavedModel that has the step
    signature; returns what export.json records of them: the files and, for int8, the cost of
    quantisation measured on another generated session against the Keras model (largest
    log-probability difference, greedy CER of each)."""
    import tensorflow as tf

    from emgtf.decoding import ctc_greedy
    from emgtf.inference.runners import keras_runner
    from emgtf.metrics import error_rates
    from emgtf.models.streaming import graph

    def converter():
        return tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[STEP_SIGNATURE])

    try:
        flat = converter().convert()
    except Exception as e:  # the converter raises ConverterError, ValueError, ...
        from emgtf.errors import first_line
        from emgtf.export.formats import unsupported

        raise unsupported(model, "tflite", f"the TFLite converter failed ({first_line(e)})") from None
    (directory / TFLITE_FILES["float32"]).write_bytes(flat)
    doc = {"files": {"float32": TFLITE_FILES["float32"]}}
    if not int8:
        return doc
    with tempfile.TemporaryDirectory(prefix="emgtf-calibration-") as folder:
        calibration, _ = _generated_session(Path(folder), CALIBRATION_SESSION, CALIBRATION_MINUTES)
        emg, target = _generated_session(Path(folder), EVALUATION_SESSION, EVALUATION_MINUTES)
    float_step = tflite_step(flat)

    def representative():
        # The states of a real stream, not zeros: each chunk with the state the stream gives it.
        state, size = np.zeros(layout.state_size, np.float32), layout.chunk_samples
        for start in range(0, len(calibration) - size + 1, size):
            chunk = calibration[start : start + size]
            yield {"state": state, "chunk": chunk}
            state, _ = float_step(state, chunk)

    quantizing = converter()
    quantizing.optimizations = [tf.lite.Optimize.DEFAULT]
    quantizing.representative_dataset = representative
    options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=_spectrogram_tensors(flat, graph(model)[0].layer.name)
    )
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=quantizing, debug_dataset=representative, debug_options=options
    )
    quantized = debugger.get_nondebug_quantized_model()
    (directory / TFLITE_FILES["int8"]).write_bytes(quantized)
    doc["files"]["int8"] = TFLITE_FILES["int8"]

    expected = keras_runner(model).log_probs(emg)
    measured = {"keras": expected}
    for kind, step in (("float32", float_step), ("int8", tflite_step(quantized))):
        measured[kind] = run_step_stream(step, layout, emg, len(expected))
    cer = {kind: error_rates(ctc_greedy(lp[None], [len(lp)]), [target])["CER"] for kind, lp in measured.items()}
    doc["int8_accuracy_cost"] = {
        "session": f"generated (emgtf.synth seed 0, user 0, session {EVALUATION_SESSION}), "
        f"{len(emg) / SAMPLE_RATE:g} s",
        "calibration": f"generated session {CALIBRATION_SESSION} of the same user, "
        f"{len(calibration) / SAMPLE_RATE:g} s, {len(calibration) // layout.chunk_samples} steps",
        "float_max_abs_log_prob_difference": float(np.abs(measured["float32"] - expected).max()),
        "int8_max_abs_log_prob_difference": float(np.abs(measured["int8"] - expected).max()),
        "int8_mean_abs_log_prob_difference": float(np.abs(measured["int8"] - expected).mean()),
        "greedy_cer": cer,
        "greedy_cer_difference_int8": cer["int8"] - cer["keras"],
        "float32_ops": "the raw signal and the spectrogram; every other op int8 where TFLite has an "
        "int8 kernel",
    }
    return doc

