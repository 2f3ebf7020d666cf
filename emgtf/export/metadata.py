"""``export.json``: what a consumer of an export needs to decode its output without emgtf."""

from __future__ import annotations

import json
from pathlib import Path

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.errors import EmgtfError
from emgtf.models.emission import EmissionRule

FORMATS = ("saved_model", "keras", "onnx", "tflite")
METADATA_FILE = "export.json"
SCHEMA_VERSION = 1
SIGNATURES = {"serving_default": ["emg"], "with_lengths": ["emg", "emg_lengths"]}
MODEL_FILES = {"saved_model": ".", "keras": "model.keras", "onnx": "model.onnx", "tflite": "model.tflite"}


def training_config_of(checkpoint: Path | None):
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


def metadata(model, rule: EmissionRule, fmt: str, *, checkpoint=None, training_config=None,
             stream_layout=None) -> dict:
    """The contents of ``export.json`` (without the verification entry); ``stream_layout``: the
    :class:`~emgtf.export.stream_step.StepLayout` of an export with a streaming step."""
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
        # SavedModel signatures and their inputs; the ONNX graph has the one input "emg", a
        # TFLite model the streaming step alone.
        "signatures": _signatures(fmt, stream_layout),
        "streaming": None if stream_layout is None else stream_layout.to_json(),
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


def _signatures(fmt: str, stream_layout) -> dict | None:
    from emgtf.export.stream_step import STEP_INPUTS, STEP_SIGNATURE

    step = {STEP_SIGNATURE: STEP_INPUTS} if stream_layout is not None else {}
    if fmt == "saved_model":
        return {**SIGNATURES, **step}
    return step or None


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
