"""Split files: which sessions are train, val and test.

Two formats are read, told apart by their keys:

- emgtf's own: YAML with a list of session names under each of ``train``, ``val`` and ``test``
  (and optional ``name``, ``user``, ``description``); ``user`` is the user id of every session;
- Meta's emg2qwerty ``config/user/<name>.yaml`` as released (the ``# @package _global_`` line is
  a YAML comment): ``user: <split name>`` and ``dataset: {train: [...], val: [...], test: [...]}``,
  each entry ``{user: <user id>, session: <session name>}``.

A session name refers to ``<data root>/<session name>.hdf5``, the layout of Meta's release; a name
must stay inside the data root (no ``..``) unless it is an absolute path. In a data root holding
the BIDS release instead (NM000104, see ``emgtf.data.bids``) the same name refers to its
session's BDF, ``sub-<user, 8 digits>/ses-<4th field of the name>/emg/*_emg.bdf`` (the user from
the split file, else looked up); a root holding both forms is an error. A session may be listed
once in one part only: the parts of a benchmark must not share data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from emgtf.data import bids
from emgtf.errors import EmgtfError
from emgtf.paths import splits_dir

TRAIN, VAL, TEST = "train", "val", "test"  # the parts of a split, by the names files and commands use
PARTS = (TRAIN, VAL, TEST)
EMGTF_KEYS = ("name", "user", "description", *PARTS)
META_KEYS = ("user", "dataset")
META_ENTRY_KEYS = ("user", "session")


@dataclass(frozen=True)
class Split:
    """Session files of each part; ``name`` is the split's name; ``users`` maps a session file to
    its user id (``None`` when the split file does not say)."""

    name: str
    root: Path
    train: list[Path] = field(default_factory=list)
    val: list[Path] = field(default_factory=list)
    test: list[Path] = field(default_factory=list)
    users: dict[Path, str | None] = field(default_factory=dict)

    def part(self, part: str) -> list[Path]:
        if part not in PARTS:
            raise EmgtfError(f"unknown split part '{part}': choose one of {', '.join(PARTS)}")
        return getattr(self, part)

    def user_of(self, session: Path) -> str | None:
        """The user id of one of the split's session files."""
        return self.users.get(Path(session))


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


def _check_keys(path: Path, doc: dict, allowed, where: str = "") -> None:
    unknown = [str(k) for k in doc if k not in allowed]
    if unknown:
        raise EmgtfError(
            f"split file {path}: unknown key '{unknown[0]}'{where} (allowed: {', '.join(allowed)})"
        )


def _session_name(path: Path, part: str, entry) -> str:
    if isinstance(entry, (str, int)) and not isinstance(entry, bool):
        return str(entry)
    raise EmgtfError(f"split file {path}: '{part}' must be a list of session names, got {entry!r}")


def _emgtf_parts(path: Path, doc: dict) -> tuple[dict, dict]:
    _check_keys(path, doc, EMGTF_KEYS)
    user = doc.get("user")
    parts, users = {}, {}
    for part in PARTS:
        names = doc.get(part) or []
        if not isinstance(names, list):
            raise EmgtfError(f"split file {path}: '{part}' must be a list of session names")
        parts[part] = [_session_name(path, part, n) for n in names]
        users.update({n: None if user is None else str(user) for n in parts[part]})
    return parts, users


def _meta_parts(path: Path, doc: dict) -> tuple[dict, dict]:
    _check_keys(path, doc, META_KEYS)
    dataset = doc.get("dataset")
    if not isinstance(dataset, dict):
        raise EmgtfError(f"split file {path}: 'dataset' must be a mapping with keys {', '.join(PARTS)}")
    _check_keys(path, dataset, PARTS, " under 'dataset'")
    parts, users = {}, {}
    for part in PARTS:
        entries = dataset.get(part) or []
        if not isinstance(entries, list):
            raise EmgtfError(f"split file {path}: 'dataset.{part}' must be a list of {{user, session}} entries")
        parts[part] = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or "session" not in entry:
                raise EmgtfError(
                    f"split file {path}: dataset.{part}[{i}] must be a mapping with 'user' and 'session'"
                )
            _check_keys(path, entry, META_ENTRY_KEYS, f" in dataset.{part}[{i}]")
            name = _session_name(path, f"dataset.{part}", entry["session"])
            parts[part].append(name)
            users[name] = None if entry.get("user") is None else str(entry["user"])
    return parts, users


def _stem(name: str) -> str:
    return name[: -len(".hdf5")] if name.endswith(".hdf5") else name


def _check_disjoint(path: Path, parts: dict) -> None:
    """No session twice in a part, none in two parts (compared without the .hdf5 suffix)."""
    seen: dict[str, str] = {}
    for part in PARTS:
        for name in parts[part]:
            key = _stem(name)
            if key in seen:
                where = f"twice in '{part}'" if seen[key] == part else f"in both '{seen[key]}' and '{part}'"
                raise EmgtfError(f"split file {path}: session {key} is listed {where}")
            seen[key] = part


def read_split_file(spec: str | os.PathLike) -> dict:
    """The session names of each part as written in the split file (either format); validates it.

    Returns ``{"train": [...], "val": [...], "test": [...], "name": str, "users": {session name:
    user id or None}, "format": "emgtf" | "emg2qwerty"}``.
    """
    path = split_path(spec)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise EmgtfError(f"split file {path} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise EmgtfError(f"split file {path} must be a mapping with keys {', '.join(PARTS)}")
    meta = "dataset" in doc
    parts, users = (_meta_parts if meta else _emgtf_parts)(path, doc)
    if not any(parts.values()):
        raise EmgtfError(f"split file {path} names no sessions")
    _check_disjoint(path, parts)
    # Meta's files name the split with "user:" (user0, generic); emgtf's with "name:".
    name = doc.get("user") if meta else doc.get("name")
    return {**parts, "name": str(name if name is not None else path.stem), "users": users,
            "format": "emg2qwerty" if meta else "emgtf"}


def _session_file(split_file: Path, root: Path, name: str) -> Path:
    file_name = name if name.endswith(".hdf5") else f"{name}.hdf5"
    if os.path.isabs(file_name):
        return Path(file_name)
    f = Path(os.path.normpath(root / file_name))
    # normpath, not resolve(): a data root that is itself a symlink stays allowed.
    if os.path.commonpath([os.path.normpath(root), f]) != os.path.normpath(root):
        raise EmgtfError(
            f"split file {split_file}: session {name} is outside data root {root} "
            "(give an absolute path to use a file elsewhere)"
        )
    return f


def load_split(spec: str | os.PathLike, root: str | os.PathLike, *, check_files: bool = True) -> Split:
    """Resolves a split (name or path, either format) against a data root.

    ``check_files``: every named file must exist (and the root be a folder); ``False`` only maps
    names to paths, to inspect a split without its data.
    """
    root = Path(root)
    path = split_path(spec)
    doc = read_split_file(path)
    if check_files and not root.is_dir():
        raise EmgtfError(f"data root {root} does not exist or is not a folder")
    bids_root = bids.root_form(root) == "bids"
    files, users = {}, {}
    for part in PARTS:
        files[part] = []
        for name in doc[part]:
            f = _session_file(path, root, name)
            if bids_root and not os.path.isabs(name):
                user = doc["users"].get(name)
                found = bids.find_session(root, _stem(name), user)
                if found is None and check_files:
                    where = f"sub-{bids.subject_label(user)}" if user is not None else "sub-*"
                    raise EmgtfError(
                        f"split '{doc['name']}' names session {_stem(name)} ({part}), which is not in BIDS "
                        f"data root {root} (no {where}/ses-{bids.session_label(name)}/emg/*_emg.bdf)"
                    )
                if found is not None or user is not None:
                    f = found or bids.bdf_path(root, bids.subject_label(user), bids.session_label(name))
            if check_files and not f.is_file():
                raise EmgtfError(
                    f"split '{doc['name']}' names session {f.name} ({part}), which is not in data root {f.parent}"
                )
            files[part].append(f)
            users[f] = doc["users"].get(name)
    return Split(name=doc["name"], root=root, users=users, **files)


def write_split_file(path: str | os.PathLike, *, name: str, train, val, test, **extra) -> Path:
    """Writes a split file in emgtf's format listing session names (without the .hdf5 suffix)."""
    path = Path(path)
    doc = {"name": name, **extra, "train": list(train), "val": list(val), "test": list(test)}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
