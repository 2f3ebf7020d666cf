"""``export.json``: what a consumer of an export needs to decode its output without emgtf."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

import emgtf
from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.charset import BACKSPACE, ENTER, SHIFT, SPACE, charset
from emgtf.config import load_saved
from emgtf.inference.export_folder import (  # noqa: F401  (the writer's names: emgtf.export re-exports them)
    FORMATS, METADATA_FILE, MODEL_FILES, SCHEMA_VERSION, SIGNATURES, STEP_INPUTS, STEP_SIGNATURE, read_metadata,
)
from emgtf.models.emission import EmissionRule
from emgtf.run_folder import RunFolder


def training_config_of(checkpoint: Path | None):
    """The run's config.yaml beside the checkpoint, as plain data, or None."""
    if checkpoint is None or not RunFolder(checkpoint.parent).config.is_file():
        return None
    cfg = load_saved(RunFolder(checkpoint.parent).config)
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation that does not resolve outside its run: keep it as text
        return OmegaConf.to_container(cfg, resolve=False)


def metadata(model, rule: EmissionRule, fmt: str, *, checkpoint=None, training_config=None,
             stream_layout=None) -> dict:
    """The contents of ``export.json`` (without the verification entry); ``stream_layout``: the
    ``StepLayout`` of an export with a streaming step."""
    import keras
    import tensorflow as tf

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
            "log_probs": f"float32 [batch, frames, {cs.num_classes}]: natural-log class probabilities per frame",
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
    step = {STEP_SIGNATURE: STEP_INPUTS} if stream_layout is not None else {}
    if fmt == "saved_model":
        return {**SIGNATURES, **step}
    return step or None

