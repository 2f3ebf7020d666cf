"""Exporting a Keras model or a ``.keras`` checkpoint to a folder, whole or not at all."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.errors import EmgtfError, first_line
from emgtf.export import formats
from emgtf.export.metadata import FORMATS, METADATA_FILE, metadata, training_config_of
from emgtf.export.stream_step import DEFAULT_CHUNK_SAMPLES, DEFAULT_INT8, int8_mode, step_layout, write_tflite
from emgtf.export.verify import probe_signal, verify_export, verify_step
from emgtf.files import write_error, write_json
from emgtf.inference.checkpoints import checkpoint_family, load_checkpoint
from emgtf.models.emission import EmissionRule


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
    streaming: bool = False,
    stream_chunk_samples: int = DEFAULT_CHUNK_SAMPLES,
    tflite_int8: str | None = DEFAULT_INT8,
) -> dict:
    """Exports a Keras model to folder ``out`` in format ``fmt``; returns what export.json holds.

    ``streaming`` (format saved_model) adds the ``stream_step`` signature; format tflite is that
    step alone, float32 and, unless ``tflite_int8`` is "none" (or None), int8: "weights" (int8
    weights) or "static" (also int8 activations in the fully connected layers; see
    ``emgtf.export.stream_step``), with ``stream_chunk_samples`` samples per step.

    ``out`` is written whole or not at all: the files are made in a hidden folder beside it, checked
    (``verify``), then moved into place.
    """
    if fmt not in FORMATS:
        raise EmgtfError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if streaming and fmt not in ("saved_model", "tflite"):
        raise EmgtfError(f"streaming=true needs format=saved_model or format=tflite, got format={fmt}")
    out = Path(out).expanduser()
    _check_out(out)
    shape = tuple(model.input.shape[1:]) if not isinstance(model.input, (list, tuple)) else None
    if shape is None or shape[1:] != (NUM_BANDS, NUM_CHANNELS):
        raise EmgtfError(
            f"model '{model.name}' takes input {shape}, expected (samples, {NUM_BANDS}, {NUM_CHANNELS})"
        )
    int8 = int8_mode(tflite_int8) if fmt == "tflite" else None
    rule = EmissionRule.from_model(model)
    # A model without a streaming step is refused before anything is written.
    layout = step_layout(model, stream_chunk_samples) if streaming or fmt == "tflite" else None
    doc = metadata(model, rule, fmt, checkpoint=checkpoint, training_config=training_config,
                   stream_layout=layout)
    try:  # a folder takes a block on most file systems (not on tmpfs): a full disk can fail here
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as e:
        raise write_error(out, e) from None
    try:
        try:
            if fmt == "saved_model":
                formats.write_saved_model(model, staging, layout)
            elif fmt == "tflite":
                with tempfile.TemporaryDirectory(prefix="emgtf-step-") as saved:
                    formats.write_saved_model(model, Path(saved), layout, serving=False)
                    doc["tflite"] = write_tflite(model, layout, staging, Path(saved), int8=int8)
            elif fmt == "keras":
                formats.write_keras(model, staging)
            else:
                formats.write_onnx(model, staging, onnx_opset)
                import tf2onnx

                doc["versions"]["tf2onnx"] = tf2onnx.__version__
                doc["onnx_opset"] = int(onnx_opset)
        except OSError as e:  # a full disk: nothing of the export is kept (the finally below)
            raise write_error(out, e) from None
        except Exception as e:
            import tensorflow as tf

            if isinstance(e, tf.errors.OpError):  # TensorFlow's file writes report I/O errors so
                raise EmgtfError(f"{out}: cannot write the export ({first_line(e)})") from None
            raise
        write_json(staging / METADATA_FILE, doc)
        if verify:
            doc["verification"] = {
                "max_abs_log_prob_difference": verify_export(model, staging, rule, checkpoint),
                "probe": "white noise std 2.5, batch of 2 (one zero-padded), "
                f"{probe_signal(rule)[0].shape[1]} samples",
            }
            if fmt == "saved_model" and layout is not None:
                doc["verification"]["stream_step_max_abs_log_prob_difference"] = verify_step(
                    model, staging, layout, rule)
            write_json(staging / METADATA_FILE, doc)
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
    if fmt not in FORMATS:
        raise EmgtfError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    _check_out(Path(out).expanduser())
    checkpoint = Path(checkpoint).expanduser()
    family = checkpoint_family(checkpoint)
    model = load_checkpoint(checkpoint, family)
    return export_model(
        model, out, fmt, checkpoint=checkpoint, training_config=training_config_of(checkpoint), **kwargs
    )
