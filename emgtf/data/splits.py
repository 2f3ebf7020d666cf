"""Split files: which sessions are train, val and test.

A split file is YAML with a list of session names under each of ``train``, ``val`` and ``test``
(and optional ``name``, ``user``, ``description``). A session name refers to the file
``<data root>/<session name>.hdf5``, the layout of Meta's release.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from emgtf.errors import EmgtfError
from emgtf.paths import splits_dir

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Session files of each part; ``name`` is the split's name."""

    name: str
    root: Path
    train: list[Path] = field(default_factory=list)
    val: list[Path] = field(default_factory=list)
    test: list[Path] = field(default_factory=list)

    def part(self, part: str) -> list[Path]:
        if part not in PARTS:
            raise EmgtfError(f"unknown split part '{part}': choose one of {', '.join(PARTS)}")
        return getattr(self, part)


def available_splits() -> list[str]:
    """Names of the split files shipped in configs/splits."""
    return sorted(p.stem for p in splits_dir().glob("*.yaml"))


def split_path(spec: str | os.PathLike) -> Path:
    """The file of a split given by name (shipped in configs/splits) or by path."""
    p = Path(spec)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise EmgtfError(f"split file {p} does not exist")
        return p
    shipped = splits_dir() / f"{spec}.yaml"
    if not shipped.is_file():
        raise EmgtfError(
            f"unknown split '{spec}': not a file, and not one of the shipped splits "
            f"({', '.join(available_splits())})"
        )
    return shipped


def read_split_file(spec: str | os.PathLike) -> dict[str, list[str]]:
    """The session names of each part, as written in the split file; validates the structure."""
    path = split_path(spec)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise EmgtfError(f"split file {path} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise EmgtfError(f"split file {path} must be a mapping with keys {', '.join(PARTS)}")
    parts = {}
    for part in PARTS:
        names = doc.get(part) or []
        if not isinstance(names, list) or not all(isinstance(n, (str, int)) for n in names):
            raise EmgtfError(f"split file {path}: '{part}' must be a list of session names")
        parts[part] = [str(n) for n in names]
    if not any(parts.values()):
        raise EmgtfError(f"split file {path} names no sessions")
    parts["name"] = str(doc.get("name", path.stem))
    return parts


def load_split(spec: str | os.PathLike, root: str | os.PathLike) -> Split:
    """Resolves a split (name or path) against a data root; every named file must exist."""
    root = Path(root)
    doc = read_split_file(spec)
    if not root.is_dir():
        raise EmgtfError(f"data root {root} does not exist or is not a folder")
    files = {}
    for part in PARTS:
        files[part] = []
        for name in doc[part]:
            f = root / (name if name.endswith(".hdf5") else f"{name}.hdf5")
            if not f.is_file():
                raise EmgtfError(
                    f"split '{doc['name']}' names session {f.name} ({part}), which is not in data root {root}"
                )
            files[part].append(f)
    return Split(name=doc["name"], root=root, **files)


def write_split_file(path: str | os.PathLike, *, name: str, train, val, test, **extra) -> Path:
    """Writes a split file listing session names (without the .hdf5 suffix)."""
    path = Path(path)
    doc = {"name": name, **extra, "train": list(train), "val": list(val), "test": list(test)}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
