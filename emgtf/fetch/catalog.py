"""The published files emgtf knows how to fetch: the two lists shipped with this package.

- ``published-files.tsv``: Meta's checkpoints and LM, SplashNet's checkpoints and the dataset
  tarball, each with its URL, digest (kind and value) and size where the host publishes one;
- ``nm000104-manifest.tsv``: every signal file of the BIDS release (NEMAR NM000104) with its
  git-annex key, size, MD5, recording duration and the git blob id and size of its events.tsv.

Both are facts (names, sizes, digests), copied from the hosts; a lab's mirror with other contents,
or a test, points at its own lists of the same columns with ``EMGTF_PUBLISHED_FILES`` and
``EMGTF_NEMAR_MANIFEST``.
"""

from __future__ import annotations

import csv
import importlib.resources
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from emgtf.errors import EmgtfError

PUBLISHED_COLUMNS = ("name", "url", "digest_kind", "digest", "bytes", "notes")
MANIFEST_COLUMNS = ("path", "annex_key", "bytes", "md5", "recording_duration_s", "events_tsv_git_sha1",
                    "events_tsv_bytes")


@dataclass(frozen=True)
class Published:
    """One published file: its name (``meta/generic.ckpt``), URL, digest and size (None: unknown)."""

    name: str
    url: str
    digest_kind: str | None
    digest: str | None
    size: int | None
    notes: str = ""


@dataclass(frozen=True)
class BidsSession:
    """One session of the BIDS release, from the manifest: ``bdf`` is its signal file's BIDS path."""

    user: str  # 8 digits
    session: str  # the ses- label: the 4th dash field of the HDF5 session name
    bdf: str
    annex_key: str
    bdf_bytes: int
    md5: str
    recording_duration_s: float
    events_git_sha1: str
    events_bytes: int

    @property
    def folder(self) -> str:
        return f"sub-{self.user}/ses-{self.session}/emg"

    @property
    def stem(self) -> str:
        return f"sub-{self.user}_ses-{self.session}"


def _list_path(variable: str, shipped: str) -> Path:
    if os.environ.get(variable):
        return Path(os.environ[variable])
    return Path(str(importlib.resources.files("emgtf.fetch"))) / shipped


def _read_tsv(path: Path, columns: tuple[str, ...]) -> list[dict]:
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    except OSError as e:
        raise EmgtfError(f"{path}: cannot read the list of published files ({e.strerror or e})") from None
    reader = csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing:
        raise EmgtfError(f"{path}: not a list of published files (no column '{missing[0]}')")
    return list(reader)


def _int(path: Path, row: dict, key: str) -> int | None:
    text = (row.get(key) or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise EmgtfError(f"{path}: {row.get('name') or row.get('path')}: {key} '{text}' is not a number") from None


@lru_cache(maxsize=4)
def _published(path: Path) -> dict[str, Published]:
    files = {}
    for row in _read_tsv(path, PUBLISHED_COLUMNS):
        files[row["name"]] = Published(
            name=row["name"], url=row["url"], digest_kind=row["digest_kind"] or None,
            digest=(row["digest"] or "").lower() or None, size=_int(path, row, "bytes"),
            notes=row.get("notes") or "",
        )
    return files


def published_files() -> dict[str, Published]:
    """Every published file by name (``$EMGTF_PUBLISHED_FILES`` or the shipped list)."""
    return _published(_list_path("EMGTF_PUBLISHED_FILES", "published-files.tsv"))


@lru_cache(maxsize=4)
def _sessions(path: Path) -> dict[str, BidsSession]:
    sessions = {}
    for row in _read_tsv(path, MANIFEST_COLUMNS):
        parts = row["path"].split("/")
        # The one signal file without a session folder duplicates a session of its user (DATA.md).
        if len(parts) != 4 or not parts[1].startswith("ses-"):
            continue
        session = parts[1][len("ses-"):]
        sessions[session] = BidsSession(
            user=parts[0][len("sub-"):], session=session, bdf=row["path"], annex_key=row["annex_key"],
            bdf_bytes=_int(path, row, "bytes"), md5=row["md5"].lower(),
            recording_duration_s=float(row["recording_duration_s"]),
            events_git_sha1=row["events_tsv_git_sha1"].lower(), events_bytes=_int(path, row, "events_tsv_bytes"),
        )
    return sessions


def bids_sessions() -> dict[str, BidsSession]:
    """Every session of the BIDS release by its ``ses-`` label (``$EMGTF_NEMAR_MANIFEST`` or the
    shipped manifest)."""
    return _sessions(_list_path("EMGTF_NEMAR_MANIFEST", "nm000104-manifest.tsv"))
