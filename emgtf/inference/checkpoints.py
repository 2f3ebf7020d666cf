"""Reading ``.keras`` checkpoints: the family stored in one, the model for inference, and the
``model=`` override a command composes a checkpoint's config with."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

from emgtf import config as config_lib
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

    # Registers the layers (here, not at the top: it imports TensorFlow). The loss and the
    # schedule a trained checkpoint names need no registration: compile=False skips them.
    import emgtf.models  # noqa: F401

    if family is not None:
        check_family(path, family)
    else:
        checkpoint_family(path)
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # Keras raises many kinds for a damaged or foreign file
        raise EmgtfError(f"cannot load checkpoint {path}: {first_line(e)}") from None


def checkpoint_model_overrides(overrides: Sequence[str], checkpoint) -> list[str]:
    """``model=<family of checkpoint>`` in front of ``overrides`` unless they choose the model, so
    ``checkpoint=X model.share_hands=false`` changes X's own family.

    The family's YAML hyperparameters are then used (for ``tds_conv_ctc`` they are the reference's,
    which a converted Meta checkpoint has); a checkpoint whose shapes differ fails with one line
    when its weights are loaded, naming the checkpoint.
    """
    if checkpoint is None or any(config_lib.chooses_model(o) for o in overrides):
        return list(overrides)
    family = checkpoint_family(checkpoint)
    if family not in config_lib.group_options("model"):
        raise EmgtfError(
            f"checkpoint {checkpoint} holds a '{family}' model, which is not an option of configs/model; "
            "choose model=<family> and its model.* hyperparameters"
        )
    return [f"model={family}", *overrides]
