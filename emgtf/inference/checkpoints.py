"""Reading ``.keras`` checkpoints: the family stored in one, and the model for inference."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from emgtf.errors import EmgtfError, first_line


def checkpoint_family(path) -> str:
    """The model family stored in a ``.keras`` file (its model name), read without loading it."""
    path = Path(path)
    if not path.is_file():
        raise EmgtfError(f"checkpoint {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            doc = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError):
        raise EmgtfError(f"checkpoint {path} is not a Keras .keras file") from None
    name = (doc.get("config") or {}).get("name")
    if not name:
        raise EmgtfError(f"checkpoint {path} has no model name (not saved by emgtf?)")
    return str(name)


def check_family(path, family: str) -> None:
    found = checkpoint_family(path)
    if found != family:
        raise EmgtfError(
            f"checkpoint {path} holds a '{found}' model, not '{family}' (choose model={found} "
            f"or another checkpoint)"
        )


def load_checkpoint(path, family: str | None = None):
    """A model from a ``.keras`` file, for inference (not compiled); checks the family first."""
    import keras

    import emgtf.models  # noqa: F401  (registers the layers)
    import emgtf.training.losses  # noqa: F401  (registers the loss a compiled checkpoint names)
    import emgtf.training.schedules  # noqa: F401

    if family is not None:
        check_family(path, family)
    else:
        checkpoint_family(path)
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # Keras raises many kinds for a damaged or foreign file
        raise EmgtfError(f"cannot load checkpoint {path}: {first_line(e)}") from None
