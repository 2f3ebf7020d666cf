"""The read side of an export folder (``python -m emgtf.export`` writes it): the file names, the
``export.json`` schema and the streaming step's layout, as every reader of an export needs them.

Runners, the streaming decoder and the export's own check read an export through this module; the
writer (``emgtf.export``) imports it from here, so the two cannot disagree and inference never
imports export.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.charset import charset
from emgtf.errors import EmgtfError
from emgtf.models.emission import EmissionRule
from emgtf.models.streaming import StateLayout

FORMATS = ("saved_model", "keras", "onnx", "tflite")
METADATA_FILE = "export.json"
SCHEMA_VERSION = 1
SIGNATURES = {"serving_default": ["emg"], "with_lengths": ["emg", "emg_lengths"]}
MODEL_FILES = {"saved_model": ".", "keras": "model.keras", "onnx": "model.onnx", "tflite": "model.tflite"}
STEP_SIGNATURE = "stream_step"
STEP_INPUTS = ["state", "chunk"]
TFLITE_FILES = {"float32": MODEL_FILES["tflite"], "int8": "model_int8.tflite"}


@dataclass(frozen=True)
class StepLayout(StateLayout):
    """The ``StateLayout`` of a step traced for chunks of
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
                        "log_probs": f"float32 [{self.frames_per_step}, {charset().num_classes}]"},
            "state_size": self.state_size,
            "frames_per_step": self.frames_per_step,
            "state_layout": offsets,
            "initial_state": "zeros",
            "warmup_emissions": self.warmup_emissions,
            "note": "feed next_state back as state; drop the first warmup_emissions log_probs rows "
            "of a stream; pad a last partial chunk with zeros and keep the emission rule's count",
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
