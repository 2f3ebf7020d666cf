"""Writing files so that a reader never sees half of one: write beside, then rename into place."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from emgtf.errors import EmgtfError


def _temporary(path: Path) -> Path:
    # The suffix stays last: Keras saves only to names ending in .keras.
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


def write_error(path, error: OSError) -> EmgtfError:
    """The one-line error of a failed write (disk full, permission, I/O error) naming the file."""
    why = error.strerror or str(error) or type(error).__name__
    return EmgtfError(f"{path}: cannot write it ({why}); the previous version, if any, is intact")


def atomic_write(path, write) -> None:
    """Writes ``path`` whole or not at all: ``write(temporary_path)`` writes a hidden file beside
    it, which is then renamed into place. On any failure the temporary file is removed and the old
    ``path`` is left as it was; an OSError (a full disk) becomes a one-line EmgtfError."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise write_error(path, e) from None
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path, text: str) -> None:
    """Writes ``text`` to ``path`` whole or not at all (a hidden temporary file, then a rename)."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_copy(source, target) -> None:
    """Copies ``source`` to ``target`` whole or not at all."""
    atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))


def write_json(path, doc) -> None:
    """``doc`` as indented UTF-8 JSON, written atomically."""
    atomic_write_text(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def read_json(path, *, missing_ok: bool = True, strict: bool = False) -> dict:
    """The JSON object in ``path``; ``{}`` if it is missing (``missing_ok``) or, unless ``strict``,
    unreadable. With ``strict``, an unreadable file is a one-line ``EmgtfError``."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise EmgtfError(f"{path} does not exist") from None
    except json.JSONDecodeError as e:
        if strict:
            raise EmgtfError(f"{path}: not valid JSON ({e.msg}, line {e.lineno} column {e.colno})") from None
        return {}
    except (OSError, UnicodeDecodeError) as e:
        if strict:
            raise EmgtfError(f"{path}: cannot read it ({e})") from None
        return {}
    if not isinstance(doc, dict):
        if strict:
            raise EmgtfError(f"{path}: expected a JSON object, got a {type(doc).__name__}")
        return {}
    return doc


def first_comment(text: str) -> str:
    """The first ``#`` comment of a YAML text before any content (Hydra's ``# @package`` skipped):
    how a config or search-space file describes itself in ``--help``."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# @package"):
            continue
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line:
            break
    return ""


def fresh_path(base) -> Path:
    """``base``, or ``base-2``, ``base-3`` ... : the first that does not exist yet."""
    base = Path(base)
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path
