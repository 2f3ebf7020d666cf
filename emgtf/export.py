"""``python -m emgtf.export checkpoint=PATH out=DIR [format=saved_model|keras|onnx]``

Turns a ``.keras`` checkpoint into a model that other programs run on raw EMG, and writes
``export.json`` beside it with what a consumer needs to decode its output without emgtf.

Formats (all in inference mode: no SpecAugment, no dropout, BatchNorm on its running statistics):

- ``saved_model``: a TensorFlow SavedModel in ``out/`` itself; loading it needs TensorFlow only
  (every emgtf layer is traced into the graph). Signatures:

  - ``serving_default(emg)``: ``emg`` float32 ``[batch, samples, 2, 16]`` (raw EMG, left band
    first, 2 kHz) -> ``log_probs`` float32 ``[batch, frames, 99]`` (natural log) and
    ``emission_lengths`` int32 ``[batch]`` (every element taken to be ``samples`` long);
  - ``with_lengths(emg, emg_lengths)``: the same for a zero-padded batch, ``emg_lengths`` int32
    ``[batch]`` the true length of each element; ``emission_lengths`` says how many frames of
    each element are its own. (Recurrent and attention layers still see the padding, so a padded
    element's log-probabilities can differ from running it alone; emgtf.evaluate uses batch 1.)

- ``keras``: ``out/model.keras``, the model saved again without optimizer state (needs emgtf).
- ``onnx``: ``out/model.onnx`` through tf2onnx: input ``emg``, outputs ``log_probs`` and
  ``emission_lengths`` as in ``serving_default``. tf2onnx 1.17 cannot convert the spectrogram
  layer's RFFT (it takes an RFFT only when ``abs`` follows it, and that path leaves a ComplexAbs op
  that onnxruntime rejects), so the ONNX graph computes the same power spectrum as a DFT by matrix
  products; the rest of the network is traced unchanged. Ops tf2onnx cannot convert at the chosen
  ``onnx_opset`` end the command with one line naming them (exit 2), and no files.

``export.json`` records the charset (98 keys in label order, blank 98), the sample rate, the
spectrogram frames (``n_fft``, ``hop_length``, 125 frames/s) and the emission length rule (e.g.
``frames - 124`` for the TDS baseline), the family, and the training config found beside the
checkpoint (``config.yaml`` as ``python -m emgtf.fit`` writes it). After writing, the export is run
on a probe signal and compared with the checkpoint (``verify=false`` skips that); the largest
difference goes into ``export.json``. Nothing is written over: ``out`` must not exist or be empty.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emgtf import NUM_BANDS, NUM_CHANNELS, SAMPLE_RATE
from emgtf.cli import run
from emgtf.errors import EmgtfError

__all__ = [
    "FORMATS",
    "METADATA_FILE",
    "EmissionRule",
    "export_checkpoint",
    "export_model",
    "read_metadata",
]

PROG = "python -m emgtf.export"
FORMATS = ("saved_model", "keras", "onnx")
METADATA_FILE = "export.json"
SCHEMA_VERSION = 1
SIGNATURES = {"serving_default": ["emg"], "with_lengths": ["emg", "emg_lengths"]}
MODEL_FILES = {"saved_model": ".", "keras": "model.keras", "onnx": "model.onnx"}
# The export check guards against real mismatches (a missing weight, a training-mode branch),
# which move log-probabilities by far more than this; float32 re-association moves them ~1e-6.
VERIFY_TOLERANCE = 1e-3


# --- emission arithmetic -----------------------------------------------------------------------


@dataclass(frozen=True)
class EmissionRule:
    """How many log-probability frames a model emits for ``n`` samples.

    ``frames = max(0, 1 + (n - n_fft) // hop_length)`` spectrogram frames, then
    ``emissions = ceil(max(0, frames - lost_frames) / subsampling)``. ``lost_frames`` is what a
    chain of unpadded convolutions drops (TDS baseline: 4 x 31 = 124): its emission ``e`` reads
    frames ``e .. e + lost_frames``, so it sits ``lost_frames / 2`` frames later than frame ``e``.
    ``subsampling`` is the frame decimation of the model (the transformer's strided convolutions).

    Emission ``e`` of a chunk that starts at sample ``s`` (a multiple of :attr:`stride`) is
    emission ``s // stride + e`` of the whole recording; the transcriber stitches chunks with that.
    """

    n_fft: int
    hop_length: int
    lost_frames: int = 0
    subsampling: int = 1
    sample_rate: int = SAMPLE_RATE

    @property
    def stride(self) -> int:
        """Samples per emission."""
        return self.hop_length * self.subsampling

    @property
    def emission_rate(self) -> float:
        """Emissions per second."""
        return self.sample_rate / self.stride

    @property
    def center_offset_frames(self) -> float:
        """Frames between spectrogram frame ``e * subsampling`` and the centre of emission ``e``."""
        return self.lost_frames / 2

    def frames(self, samples):
        """Spectrogram frames of ``samples`` samples (int or numpy array)."""
        frames = 1 + (np.asarray(samples) - self.n_fft) // self.hop_length
        frames = np.maximum(frames, 0)
        return int(frames) if np.ndim(frames) == 0 else frames

    def emissions(self, samples):
        """Emitted frames of ``samples`` samples (int or numpy array)."""
        kept = np.maximum(np.asarray(self.frames(samples)) - self.lost_frames, 0)
        emitted = -(-kept // self.subsampling)
        return int(emitted) if np.ndim(emitted) == 0 else emitted

    def samples_for(self, emissions: int) -> int:
        """The fewest samples that give ``emissions`` emissions."""
        if emissions <= 0:
            return 0
        frames = self.lost_frames + self.subsampling * (emissions - 1) + 1
        return self.n_fft + (frames - 1) * self.hop_length

    def frames_formula(self) -> str:
        return f"max(0, 1 + (samples - {self.n_fft}) // {self.hop_length})"

    def describe(self) -> str:
        """The rule in the words of ``emgtf.models.emission_rule``: ``frames - 124`` and so on."""
        kept = f"frames - {self.lost_frames}" if self.lost_frames else "frames"
        if self.subsampling == 1:
            return kept
        kept = f"({kept})" if self.lost_frames else kept
        return f"ceil({kept} / {self.subsampling})"

    def to_json(self) -> dict:
        return {
            **asdict(self),
            "stride_samples": self.stride,
            "emission_rate_hz": self.emission_rate,
            "frames": self.frames_formula(),
            "emissions": self.describe() + " (never below 0)",
            "center_offset_frames": self.center_offset_frames,
        }

    @classmethod
    def from_json(cls, doc, source) -> "EmissionRule":
        """The rule of an ``export.json`` ``emission`` entry; ``source`` names the file in errors."""
        if not isinstance(doc, dict):
            raise EmgtfError(f"{source}: 'emission' must be an object")
        values = {}
        for key, minimum in (("n_fft", 1), ("hop_length", 1), ("lost_frames", 0), ("subsampling", 1),
                             ("sample_rate", 1)):
            value = doc.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise EmgtfError(
                    f"{source}: 'emission.{key}' must be an integer >= {minimum}, got {value!r}"
                )
            values[key] = value
        return cls(**values)

    @classmethod
    def from_model(cls, model) -> "EmissionRule":
        """The rule of a Keras model, read off ``emgtf.models.emission_lengths`` by probing it."""
        from emgtf.features import LogSpectrogram
        from emgtf.models import emission_lengths

        spectrograms = [layer for layer in model.layers if isinstance(layer, LogSpectrogram)]
        if len(spectrograms) != 1:
            raise EmgtfError(
                f"model '{model.name}' has {len(spectrograms)} LogSpectrogram layers, expected one "
                "(not an emgtf model?)"
            )
        n_fft, hop = spectrograms[0].n_fft, spectrograms[0].hop_length
        # Every frame count up to a few thousand, and sample counts between frame boundaries.
        frames = np.arange(4096, dtype=np.int64)
        samples = np.where(frames > 0, n_fft + (frames - 1) * hop, 0)
        samples = np.concatenate([samples, samples[1:] + hop - 1])
        emitted = np.asarray(emission_lengths(model, samples), dtype=np.int64)
        base = cls(n_fft=n_fft, hop_length=hop)
        span = 1024  # frames; a power of two, so any power-of-two decimation divides it
        far = base.frames(samples[3000])
        step = int(emitted[3000 + span] - emitted[3000])
        if step > 0 and span % step == 0:
            sub = span // step
            lowest = far - sub * int(emitted[3000])
            for lost in range(max(0, lowest), lowest + sub):
                rule = cls(n_fft=n_fft, hop_length=hop, lost_frames=lost, subsampling=sub)
                if np.array_equal(rule.emissions(samples), emitted):
                    return rule
        raise EmgtfError(
            f"model '{model.name}': its emission lengths are not ceil((frames - c) / k) for any c, k, "
            "so chunks of a session cannot be aligned"
        )


# --- what export.json says ---------------------------------------------------------------------


def _training_config(checkpoint: Path | None):
    """The run's config.yaml beside the checkpoint, as plain data, or None."""
    if checkpoint is None or not (checkpoint.parent / "config.yaml").is_file():
        return None
    from omegaconf import OmegaConf

    from emgtf.config import load_saved

    cfg = load_saved(checkpoint.parent / "config.yaml")
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation that does not resolve outside its run: keep it as text
        return OmegaConf.to_container(cfg, resolve=False)


def metadata(model, rule: EmissionRule, fmt: str, *, checkpoint=None, training_config=None) -> dict:
    """The contents of ``export.json`` (without the verification entry)."""
    import keras
    import tensorflow as tf

    import emgtf
    from emgtf.charset import BACKSPACE, ENTER, SHIFT, SPACE, charset

    cs = charset()
    return {
        "schema_version": SCHEMA_VERSION,
        "format": fmt,
        "model_file": MODEL_FILES[fmt],
        "family": model.name,
        "parameters": int(model.count_params()),
        "checkpoint": None if checkpoint is None else str(Path(checkpoint).resolve()),
        "input": {
            "name": "emg",
            "dtype": "float32",
            "shape": ["batch", "samples", NUM_BANDS, NUM_CHANNELS],
            "bands": ["left", "right"],
            "sample_rate": rule.sample_rate,
            "note": "raw EMG, left band first; a zero-padded batch needs emg_lengths (SavedModel "
            "signature with_lengths)",
        },
        "outputs": {
            "log_probs": "float32 [batch, frames, 99]: natural-log class probabilities per frame",
            "emission_lengths": "int32 [batch]: frames of log_probs that belong to each element",
        },
        # SavedModel signatures and their inputs; the ONNX graph has the one input "emg".
        "signatures": SIGNATURES if fmt == "saved_model" else None,
        "charset": {
            "keys": list(cs.chars),
            "blank": cs.blank,
            "num_classes": cs.num_classes,
            "special": {"backspace": BACKSPACE, "enter": ENTER, "space": SPACE, "shift": SHIFT},
        },
        "sample_rate": rule.sample_rate,
        "frame_rate_hz": rule.sample_rate / rule.hop_length,
        "emission": rule.to_json(),
        "decoding": "CTC: argmax per frame, merge repeats, drop the blank (greedy); keys are labels "
        "0..97 in charset order, backspace deletes the previous key",
        "versions": {
            "emgtf": emgtf.__version__, "keras": keras.__version__, "tensorflow": tf.__version__
        },
        "training_config": training_config,
    }


def read_metadata(directory) -> dict:
    """``export.json`` of an export folder, checked; errors are one line naming the file."""
    directory = Path(directory)
    path = directory / METADATA_FILE
    if not directory.is_dir():
        raise EmgtfError(f"{directory}: not an export folder (no such directory)")
    if not path.is_file():
        raise EmgtfError(
            f"{directory}: not an emgtf export (no {METADATA_FILE}; "
            "write one with python -m emgtf.export)"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EmgtfError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(doc, dict):
        raise EmgtfError(f"{path}: must hold a JSON object")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise EmgtfError(
            f"{path}: schema_version {doc.get('schema_version')!r}, expected {SCHEMA_VERSION}"
        )
    if doc.get("format") not in FORMATS:
        raise EmgtfError(f"{path}: format {doc.get('format')!r} is not one of {', '.join(FORMATS)}")
    charset_doc = doc.get("charset")
    if not isinstance(charset_doc, dict) or not isinstance(charset_doc.get("keys"), list):
        raise EmgtfError(f"{path}: 'charset.keys' is missing")
    rule = EmissionRule.from_json(doc.get("emission"), path)
    if doc.get("sample_rate") != rule.sample_rate:
        raise EmgtfError(
            f"{path}: sample_rate {doc.get('sample_rate')!r} disagrees with emission.sample_rate"
        )
    return doc


# --- the formats -------------------------------------------------------------------------------


def _emg_spec():
    import tensorflow as tf

    return tf.TensorSpec([None, None, NUM_BANDS, NUM_CHANNELS], tf.float32, name="emg")


def _outputs(model, emg, log_probs, lengths) -> dict:
    import tensorflow as tf

    from emgtf.models import emission_lengths

    emitted = tf.cast(emission_lengths(model, lengths), tf.int32)
    # A length beyond the padded batch cannot emit frames the batch does not have.
    emitted = tf.minimum(emitted, tf.shape(log_probs)[1])
    return {"log_probs": tf.cast(log_probs, tf.float32), "emission_lengths": emitted}


def _full_lengths(emg):
    import tensorflow as tf

    shape = tf.shape(emg)
    return tf.fill([shape[0]], shape[1])


def serving_functions(model) -> dict:
    """The SavedModel signatures as ``tf.function`` s: ``{name: (function, input_signature)}``."""
    import tensorflow as tf

    def serve(emg):
        return _outputs(model, emg, model(emg, training=False), _full_lengths(emg))

    def serve_with_lengths(emg, emg_lengths):
        return _outputs(model, emg, model(emg, training=False), emg_lengths)

    lengths_spec = tf.TensorSpec([None], tf.int32, name="emg_lengths")
    return {
        "serving_default": (tf.function(serve), [_emg_spec()]),
        "with_lengths": (tf.function(serve_with_lengths), [_emg_spec(), lengths_spec]),
    }


def _write_saved_model(model, directory: Path) -> None:
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (function, signature) in serving_functions(model).items():
        archive.add_endpoint(name, function, input_signature=signature)
    archive.write_out(str(directory), verbose=False)


def _write_keras(model, directory: Path) -> None:
    model.save(directory / MODEL_FILES["keras"])


def _log_spectrogram_layer(model):
    from emgtf.features import LogSpectrogram

    return next(layer for layer in model.layers if isinstance(layer, LogSpectrogram))


def onnx_function(model):
    """``tf.function`` of the model with the spectrogram's RFFT as a DFT by matrix products.

    The network after the spectrogram is the model's own graph (a Keras model from the raw input
    and the spectrogram to the output), so only the power spectrum is computed differently: the
    periodic Hann window scaled by 1 / sqrt(window energy), folded into the DFT matrices.
    """
    import keras
    import tensorflow as tf

    spectrogram = _log_spectrogram_layer(model)
    try:
        rest = keras.Model([model.input, spectrogram.output], model.output)
    except Exception as e:
        why = f"its graph cannot be cut after the spectrogram ({_first_line(e)})"
        raise _unsupported(model, "onnx", why) from None
    n_fft, hop = spectrogram.n_fft, spectrogram.hop_length
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    window = window / np.sqrt(np.sum(window**2))
    angle = 2.0 * np.pi * np.outer(np.arange(n_fft), np.arange(n_fft // 2 + 1)) / n_fft
    # numpy, not tf.constant: an eager tensor would be captured as an extra graph input.
    cos = (window[:, None] * np.cos(angle)).astype(np.float32)
    sin = (window[:, None] * -np.sin(angle)).astype(np.float32)
    log10 = np.float32(np.log(10.0))
    from emgtf.features import POWER_FLOOR

    def serve(emg):
        x = tf.transpose(emg, (0, 2, 3, 1))  # (B, 2, 16, T): frames along the last axis
        frames = tf.signal.frame(x, n_fft, hop, axis=-1)  # (B, 2, 16, F, n_fft)
        real, imag = tf.linalg.matmul(frames, cos), tf.linalg.matmul(frames, sin)
        power = tf.math.log(real * real + imag * imag + POWER_FLOOR) / log10
        features = tf.transpose(power, (0, 3, 1, 2, 4))  # (B, F, 2, 16, bins)
        log_probs = rest([emg, features], training=False)
        return _outputs(model, emg, log_probs, _full_lengths(emg))

    return tf.function(serve, input_signature=[_emg_spec()])


def _write_onnx(model, directory: Path, opset: int) -> None:
    try:
        import onnx
        import tf2onnx
    except ImportError:
        raise EmgtfError("format=onnx needs tf2onnx and onnx (pip install 'emgtf[onnx]')") from None
    function = onnx_function(model)
    # tf2onnx logs every op it cannot convert (with tracebacks) and goes on; we report them below.
    tf2onnx_logger = logging.getLogger("tf2onnx")
    level = tf2onnx_logger.level
    tf2onnx_logger.setLevel(logging.CRITICAL)
    try:
        proto, _ = tf2onnx.convert.from_function(
            function, input_signature=function.input_signature, opset=int(opset)
        )
    except Exception as e:  # tf2onnx raises ValueError, NotImplementedError, KeyError, ...
        why = f"tf2onnx {tf2onnx.__version__} at opset {opset}: {_first_line(e)}"
        raise _unsupported(model, "onnx", why) from None
    finally:
        tf2onnx_logger.setLevel(level)
    # What tf2onnx could not convert stays in the graph as TensorFlow ops, unknown to ONNX.
    unconverted = sorted(_foreign_ops(proto.graph, int(opset), onnx))
    if unconverted:
        why = (f"tf2onnx {tf2onnx.__version__} at opset {opset} cannot convert the TensorFlow ops "
               f"{', '.join(unconverted)}" + (" (try a higher onnx_opset)" if opset < 17 else ""))
        raise _unsupported(model, "onnx", why)
    try:
        onnx.checker.check_model(proto)
    except Exception as e:
        why = f"tf2onnx {tf2onnx.__version__} wrote an invalid model ({_first_line(e)})"
        raise _unsupported(model, "onnx", why) from None
    onnx.save(proto, str(directory / MODEL_FILES["onnx"]))


def _foreign_ops(graph, opset: int, onnx) -> set[str]:
    """Op types of ``graph`` (and its loop bodies) that standard ONNX at ``opset`` lacks."""
    foreign = set()
    for node in graph.node:
        if node.domain in ("", "ai.onnx"):
            try:
                onnx.defs.get_schema(node.op_type, max_inclusive_version=opset, domain="")
            except onnx.defs.SchemaError:
                foreign.add(node.op_type)
        for attribute in node.attribute:
            for subgraph in [attribute.g, *attribute.graphs]:
                foreign |= _foreign_ops(subgraph, opset, onnx)
    return foreign


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _unsupported(model, fmt: str, why: str) -> EmgtfError:
    return EmgtfError(f"format={fmt} cannot export model '{model.name}': {why}")


# --- checking an export ------------------------------------------------------------------------


def probe_signal(rule: EmissionRule, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A batch of two white-noise signals (std 2.5, the scale of real EMG) and their lengths; the
    second is zero-padded, its length between frame boundaries."""
    samples = max(rule.samples_for(80), 2 * rule.sample_rate) + 7
    emg = np.random.default_rng(seed).normal(0.0, 2.5, (2, samples, NUM_BANDS, NUM_CHANNELS))
    emg = emg.astype(np.float32)
    lengths = np.array([samples, samples - 41 * rule.hop_length - 5], dtype=np.int32)
    emg[1, lengths[1]:] = 0.0
    return emg, lengths


def _predict(model, emg: np.ndarray) -> np.ndarray:
    # The compiled predict step: an eager call steps recurrent layers frame by frame in Python.
    return np.asarray(model.predict_on_batch(emg), dtype=np.float32)


def run_export(directory, emg: np.ndarray, lengths: np.ndarray | None = None) -> dict:
    """Outputs of an export folder's model on ``emg``: ``{"log_probs", "emission_lengths"}``.

    ``lengths`` (padded batches) needs the SavedModel's ``with_lengths`` signature or a ``.keras``
    model; the ONNX model takes full-length inputs only.
    """
    directory = Path(directory)
    doc = read_metadata(directory)
    fmt = doc["format"]
    if fmt == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(directory))
        if lengths is None:
            out = loaded.signatures["serving_default"](emg=tf.constant(emg))
        else:
            out = loaded.signatures["with_lengths"](
                emg=tf.constant(emg), emg_lengths=tf.constant(lengths)
            )
        return {k: v.numpy() for k, v in out.items()}
    if fmt == "keras":
        from emgtf.models import emission_lengths
        from emgtf.training import load_checkpoint

        model = load_checkpoint(directory / doc["model_file"])
        log_probs = _predict(model, emg)
        n = np.full(len(emg), emg.shape[1]) if lengths is None else np.asarray(lengths)
        emitted = np.asarray(emission_lengths(model, n), np.int32)
        return {"log_probs": log_probs, "emission_lengths": emitted}
    if lengths is not None:
        raise EmgtfError("the ONNX export takes full-length inputs only (no emg_lengths)")
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(
            str(directory / doc["model_file"]), providers=["CPUExecutionProvider"]
        )
    except Exception as e:  # onnxruntime's own exception types (InvalidGraph, Fail, ...)
        raise EmgtfError(f"{directory}: onnxruntime cannot load the ONNX model ({_first_line(e)})") from None
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"emg": emg})))


def verify_export(model, directory, rule: EmissionRule) -> float:
    """Runs the export on :func:`probe_signal` and returns the largest log-probability difference
    from ``model``; raises EmgtfError if it exceeds VERIFY_TOLERANCE or a length is off."""
    from emgtf.models import emission_lengths

    emg, lengths = probe_signal(rule)
    fmt = read_metadata(directory)["format"]
    expected = _predict(model, emg)
    checks = [(None, np.full(len(emg), emg.shape[1]))]
    if fmt != "onnx":
        checks.append((lengths, lengths))
    worst = 0.0
    for given, true_lengths in checks:
        got = run_export(directory, emg, given)
        if got["log_probs"].shape != expected.shape:
            raise EmgtfError(
                f"export check failed: log_probs of shape {got['log_probs'].shape}, the checkpoint "
                f"gives {expected.shape}"
            )
        want = np.asarray(emission_lengths(model, true_lengths), dtype=np.int64)
        got_lengths = np.asarray(got["emission_lengths"], np.int64)
        consistent = np.array_equal(want, rule.emissions(true_lengths))
        if not consistent or not np.array_equal(got_lengths, want):
            raise EmgtfError(
                f"export check failed: emission lengths {got['emission_lengths'].tolist()}, expected "
                f"{want.tolist()}"
            )
        worst = max(worst, float(np.max(np.abs(got["log_probs"] - expected))))
    if not worst <= VERIFY_TOLERANCE:
        raise EmgtfError(
            f"export check failed: the {fmt} export differs from the checkpoint by {worst:.3g} "
            f"(tolerance {VERIFY_TOLERANCE})"
        )
    return worst


# --- writing -----------------------------------------------------------------------------------


def _write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EmgtfError(f"out {out} exists and is not an empty folder; choose a new out=")


def export_model(
    model,
    out,
    fmt: str = "saved_model",
    *,
    checkpoint=None,
    training_config=None,
    onnx_opset: int = 17,
    verify: bool = True,
) -> dict:
    """Exports a Keras model to folder ``out`` in format ``fmt``; returns what export.json holds.

    ``out`` is written whole or not at all: the files are made in a hidden folder beside it, checked
    (``verify``), then moved into place.
    """
    if fmt not in FORMATS:
        raise EmgtfError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out).expanduser()
    _check_out(out)
    shape = tuple(model.input.shape[1:]) if not isinstance(model.input, (list, tuple)) else None
    if shape is None or shape[1:] != (NUM_BANDS, NUM_CHANNELS):
        raise EmgtfError(
            f"model '{model.name}' takes input {shape}, expected (samples, {NUM_BANDS}, {NUM_CHANNELS})"
        )
    rule = EmissionRule.from_model(model)
    doc = metadata(model, rule, fmt, checkpoint=checkpoint, training_config=training_config)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        if fmt == "saved_model":
            _write_saved_model(model, staging)
        elif fmt == "keras":
            _write_keras(model, staging)
        else:
            _write_onnx(model, staging, onnx_opset)
            import tf2onnx

            doc["versions"]["tf2onnx"] = tf2onnx.__version__
            doc["onnx_opset"] = int(onnx_opset)
        _write_json(staging / METADATA_FILE, doc)
        if verify:
            doc["verification"] = {
                "max_abs_log_prob_difference": verify_export(model, staging, rule),
                "probe": "white noise std 2.5, batch of 2 (one zero-padded), "
                f"{probe_signal(rule)[0].shape[1]} samples",
            }
            _write_json(staging / METADATA_FILE, doc)
        _check_out(out)  # nobody wrote there meanwhile
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return doc


def export_checkpoint(checkpoint, out, fmt: str = "saved_model", **kwargs) -> dict:
    """Loads a ``.keras`` checkpoint (and the run's config.yaml beside it) and exports it."""
    from emgtf.training import checkpoint_family, load_checkpoint

    if fmt not in FORMATS:
        raise EmgtfError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    _check_out(Path(out).expanduser())
    checkpoint = Path(checkpoint).expanduser()
    family = checkpoint_family(checkpoint)
    model = load_checkpoint(checkpoint, family)
    return export_model(
        model, out, fmt, checkpoint=checkpoint, training_config=_training_config(checkpoint), **kwargs
    )


# --- command line ------------------------------------------------------------------------------


def _parser():
    from emgtf import config as config_lib

    keys = "\n".join(f"  {k:<12} {c}" for k, c in config_lib.top_level_keys("export"))
    return config_lib.CommandParser(
        prog=PROG,
        description="Export a checkpoint as a TensorFlow SavedModel (TensorFlow alone loads it), a "
        ".keras file or ONNX, with export.json (charset, sample rate, frame and emission rules).",
        epilog=(
            "overrides (Hydra syntax, key=value):\n" + keys + "\n\nexamples:\n"
            "  python -m emgtf.export checkpoint=runs/X/best.keras out=exports/X\n"
            "  python -m emgtf.export checkpoint=runs/X/best.keras format=onnx out=exports/X-onnx"
        ),
    )


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)

    from emgtf import config as config_lib

    cfg = config_lib.compose("export", args.overrides)
    if args.dry_run:
        print(config_lib.to_yaml(cfg), end="")
        return 0
    config_lib.check_complete(cfg, "export")
    if cfg.format not in FORMATS:
        raise EmgtfError(f"format must be one of {', '.join(FORMATS)}, got {cfg.format!r}")
    opset = cfg.onnx_opset
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 7:
        raise EmgtfError(f"onnx_opset must be an integer >= 7 (tf2onnx's oldest), got {opset!r}")
    doc = export_checkpoint(
        str(cfg.checkpoint), str(cfg.out), str(cfg.format), onnx_opset=opset, verify=bool(cfg.verify)
    )
    check = doc.get("verification")
    checked = (
        f"; matches the checkpoint within {check['max_abs_log_prob_difference']:.2g}" if check else ""
    )
    print(
        f"emgtf.export: {doc['family']} ({doc['parameters']:,} parameters) -> {cfg.out} "
        f"[{cfg.format}], emissions = {doc['emission']['emissions']}{checked}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run(main, "emgtf.export"))
