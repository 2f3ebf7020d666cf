"""A cache of each session's window index, so a run over the full release does not open and
parse 1,135 files again before its first step.

The index of a session (its sample count, row dtype, its keys' labels and press times, the count
of keys outside the recording) takes an open of the file, its keystrokes and its first and last
timestamp to build. It is kept as a small ``.npz`` in
``<cache>/index/``, keyed by the file's resolved path, size and modification time: a session file
that changes is indexed afresh. ``EMGTF_INDEX_CACHE=0`` turns the cache off. A cache file that
cannot be read or written is ignored (the index is then built from the file, as without a cache).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from emgtf.data import bids
from emgtf.paths import cache_dir

VERSION = 2  # 1 held sample positions of the keys
ARRAYS = ("labels", "presses")


def enabled() -> bool:
    return os.environ.get("EMGTF_INDEX_CACHE", "1") != "0"


def _key(path: Path) -> dict:
    stat = path.stat()
    key = {"version": VERSION, "path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if bids.is_bids_session(path):
        # A BIDS session's keys and length live in its sidecars, not in the BDF.
        key["sidecars"] = [[p.stat().st_size, p.stat().st_mtime_ns] if p.exists() else None
                           for p in bids.companion_files(path)]
    return key


def cache_file(path) -> Path:
    """Where the index of session ``path`` is cached."""
    digest = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()
    return cache_dir() / "index" / f"{digest}.npz"


def load(path) -> dict | None:
    """The cached index fields of ``path`` (``meta`` dict plus the arrays), or None."""
    if not enabled():
        return None
    path = Path(path)
    try:
        with np.load(cache_file(path), allow_pickle=False) as cached:
            meta = json.loads(str(cached["meta"]))
            if meta.get("key") != _key(path):
                return None
            return {"meta": meta, **{name: cached[name] for name in ARRAYS}}
    except (OSError, ValueError, KeyError):
        return None


def store(path, meta: dict, arrays: dict) -> None:
    """Caches the index of ``path``; never raises (a cache is an optimisation)."""
    if not enabled():
        return
    path = Path(path)
    target = cache_file(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp.npz")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        doc = json.dumps({**meta, "key": _key(path)})
        np.savez(tmp, meta=np.asarray(doc), **{name: arrays[name] for name in ARRAYS})
        os.replace(tmp, target)
    except OSError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
