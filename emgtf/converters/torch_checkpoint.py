"""Reading a PyTorch Lightning ``.ckpt`` without letting the file run anything.

A ``.ckpt`` is a ``torch.save`` archive whose ``data.pkl`` is a pickle, and a pickle can name any
importable callable (``os.system``) and have the unpickler call it. PyTorch's ``weights_only``
unpickler resolves only allowlisted globals; this module gives it exactly the objects a genuine
Lightning checkpoint holds (DATA.md, "Meta's released checkpoints"):

- tensors, storages, dtypes, ``torch.Size`` and ``collections.OrderedDict`` (PyTorch's own
  ``weights_only`` set), plain containers, numbers and strings (pickle opcodes, no globals);
- omegaconf's ``DictConfig`` / ``ListConfig`` with what their pickled state refers to: the
  ``ContainerMetadata`` / ``Metadata`` records, the untyped value node ``AnyNode``, the
  ``defaultdict`` of its resolver cache and the types the metadata records (``typing.Any``,
  ``dict``, ``list``, ``int``) - Hydra's YAML configs, as Lightning saves the module's arguments;
- Lightning's ``AttributeDict`` (the ``hparams`` of a module): see ``ATTRIBUTE_DICT_NAMES``.

Anything else (a structured config's dataclass, a numpy scalar, a function) is refused before the
unpickler runs: one line naming the file and the first such global. Nothing from the file is
called: globals outside the list are never imported.
"""

from __future__ import annotations

import collections
import re
import typing
import zipfile
from pathlib import Path

from emgtf.errors import EmgtfError, first_line

__all__ = ["ATTRIBUTE_DICT_NAMES", "TORCH_INSTALL", "load_lightning_checkpoint"]

TORCH_INSTALL = 'pip install "emgtf[torch]"'

# Where pickle finds Lightning's AttributeDict (a dict subclass that adds attribute access): the
# module that defines the class in each release line. pytorch_lightning 1.x defined it in
# utilities.parsing; 2.x moved it to lightning_fabric.utilities.data, which the unified
# `lightning` package ships as lightning.fabric.utilities.data (and re-exports in
# lightning.pytorch.utilities.parsing). emgtf reads it as a plain dict, registered under these
# names, so neither Lightning (not a dependency) nor anything in it is imported.
ATTRIBUTE_DICT_NAMES = (
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
    "lightning.fabric.utilities.data.AttributeDict",
    "lightning.pytorch.utilities.parsing.AttributeDict",
)

_WEIGHTS_UNPICKLER = re.compile(r"WeightsUnpickler error:\s*(.+)")


def _allowlist() -> list:
    """The objects (and names) ``torch.serialization.safe_globals`` is given."""
    from omegaconf import DictConfig, ListConfig
    from omegaconf.base import ContainerMetadata, Metadata
    from omegaconf.nodes import AnyNode

    return [
        DictConfig,
        ListConfig,
        ContainerMetadata,
        Metadata,
        AnyNode,
        collections.defaultdict,
        typing.Any,
        dict,
        list,
        int,
        *((dict, name) for name in ATTRIBUTE_DICT_NAMES),
    ]


def _import_torch(path: Path):
    try:
        import torch
    except ImportError:
        raise EmgtfError(f"{path}: reading a PyTorch .ckpt needs torch: {TORCH_INSTALL}") from None
    return torch


def _check_archive(path: Path) -> None:
    """A zip must be one ``torch.save`` wrote: a ``<name>/data.pkl`` record."""
    if not zipfile.is_zipfile(path):
        return  # a pre-1.6 torch.save pickle: the weights-only unpickler reads those as well
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise EmgtfError(f"{path}: damaged zip archive: {first_line(e)}") from None
    if not any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        raise EmgtfError(f"{path}: a zip archive but not a PyTorch checkpoint (no data.pkl in it)")


def _refusal(path: Path, name: str) -> EmgtfError:
    return EmgtfError(
        f"{path}: refused: the file's pickle names {name}, which is not among the objects a "
        "Lightning checkpoint holds (tensors, containers, omegaconf configs); nothing was loaded"
    )


def load_lightning_checkpoint(path) -> typing.Any:
    """The object ``torch.save`` stored at ``path`` (a Lightning checkpoint's dict), tensors on
    the CPU, read with PyTorch's weights-only unpickler and ``_allowlist``.

    A file that names any other global raises a one-line EmgtfError naming the file and that
    global, before anything is unpickled; a damaged or foreign file, one naming what it is.
    """
    path = Path(path)
    torch = _import_torch(path)
    _check_archive(path)
    with torch.serialization.safe_globals(_allowlist()):
        if zipfile.is_zipfile(path):
            try:
                # The pickle's GLOBAL opcodes outside the allowlist, read without unpickling.
                unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
            except Exception as e:  # torch raises several kinds for a damaged archive
                if "Unsupported operand" in str(e):
                    # An opcode the weights-only reader does not know (a newer pickle protocol's
                    # STACK_GLOBAL names globals out of its sight): refused unread.
                    raise EmgtfError(f"{path}: refused: the file's pickle cannot be checked "
                                     f"({first_line(e)}); nothing was loaded") from None
                raise EmgtfError(f"{path}: cannot read the PyTorch checkpoint: {first_line(e)}") from None
            if unsafe:
                raise _refusal(path, sorted(unsafe)[0])
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # UnpicklingError for what the scan cannot see, others for damage
            found = _WEIGHTS_UNPICKLER.search(str(e))
            if found:
                raise EmgtfError(f"{path}: refused by the weights-only unpickler: "
                                 f"{found.group(1).strip()}; nothing was loaded") from None
            raise EmgtfError(f"{path}: cannot read the PyTorch checkpoint: {first_line(e)}") from None
