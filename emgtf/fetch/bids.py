"""The files of chosen sessions of the BIDS release (NEMAR NM000104), as download targets.

Sessions are chosen by user (Meta's user ids) or by split file (Meta's ``config/user/*.yaml`` or
emgtf's, which name HDF5 sessions: ``<date>-<time>-<t>-keystrokes-...`` is ``ses-<t>`` of
``sub-<user, 8 digits>``, as DATA.md says). Per session:

- the signal ``_emg.bdf``, fetched by its git-annex key from NEMAR's S3 bucket and checked against
  the MD5 and size of the shipped manifest;
- ``_events.tsv``, checked against its git blob id and size from the manifest;
- ``_emg.json``, ``_channels.tsv`` and ``electrodes.tsv`` from the dataset's git repository. The
  manifest has no digest for them, so they are checked for form: ``_emg.json`` must state the
  manifest's ``RecordingDuration``, the two TSVs must list the 32 channels / electrodes.

plus the dataset's top-level files (``dataset_description.json``, participants, the events and
coordinate-system sidecars), checked for form likewise.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from emgtf.errors import EmgtfError
from emgtf.fetch.catalog import BidsSession, bids_sessions
from emgtf.fetch.transfer import Target

OBJECTS = "https://nemar.s3.us-east-2.amazonaws.com/nm000104/objects/"
REPOSITORY = "https://raw.githubusercontent.com/nemarDatasets/nm000104/main/"
TOP_LEVEL = ("dataset_description.json", "participants.tsv", "participants.json", "task-typing_events.json",
             "space-leftForearm_coordsystem.json", "space-rightForearm_coordsystem.json")
CHANNELS = 32


def session_label(name: str) -> str:
    """The ``ses-`` label of an HDF5 session name: its 4th dash-separated field."""
    stem = Path(name).name
    stem = stem[: -len(".hdf5")] if stem.endswith(".hdf5") else stem
    fields = stem.split("-")
    if len(fields) < 4 or not fields[3].isdigit():
        raise EmgtfError(f"session {name}: not an emg2qwerty session name (<date>-<unix time>-...)")
    return fields[3]


def user_label(user) -> str:
    """Meta's user id as the BIDS ``sub-`` label: 8 digits, leading zeros kept."""
    text = str(user).strip()
    if not text.isdigit() or len(text) > 8:
        raise EmgtfError(f"user '{user}': not an emg2qwerty user id (up to 8 digits)")
    return text.zfill(8)


def select_sessions(*, users=(), splits=()) -> list[BidsSession]:
    """The sessions of ``users`` and of the split files ``splits``, in manifest order, each once."""
    from emgtf.data.splits import PARTS, read_split_file

    sessions = bids_sessions()
    chosen: dict[str, BidsSession] = {}
    for user in users:
        label = user_label(user)
        found = [s for s in sessions.values() if s.user == label]
        if not found:
            raise EmgtfError(f"user {user}: no sessions in the BIDS release's manifest")
        chosen.update((s.session, s) for s in found)
    for spec in splits:
        doc = read_split_file(spec)
        for part in PARTS:
            for name in doc[part]:
                s = sessions.get(session_label(name))
                if s is None:
                    raise EmgtfError(f"split {spec}: session {name} is not in the BIDS release's manifest")
                user = doc["users"].get(name)
                if user is not None and user_label(user) != s.user:
                    raise EmgtfError(f"split {spec}: session {name} belongs to user {s.user} in the BIDS "
                                     f"release, not {user}")
                chosen[s.session] = s
    order = list(sessions)
    return sorted(chosen.values(), key=lambda s: order.index(s.session))


def _json_check(required: str | None = None, equals: float | None = None):
    def check(path: Path) -> str | None:
        try:
            # strict=False: the release's coordsystem files hold a raw control character (0x1A)
            # inside a string, which strict JSON forbids.
            doc = json.loads(path.read_text(encoding="utf-8"), strict=False)
        except (ValueError, UnicodeDecodeError) as e:
            return f"not valid JSON ({e})"
        if not isinstance(doc, dict):
            return "not a JSON object"
        if required is not None:
            if required not in doc:
                return f"no {required}"
            if equals is not None and abs(float(doc[required]) - equals) > 1e-6:
                return f"{required} {doc[required]}, the manifest says {equals}"
        return None
    return check


def _tsv_check(column: str, rows: int | None = None):
    def check(path: Path) -> str | None:
        try:
            with open(path, encoding="utf-8", newline="") as f:
                table = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            return f"not a readable TSV ({e})"
        if not table or column not in table[0]:
            return f"no '{column}' column"
        if rows is not None and len(table) != rows:
            return f"{len(table)} rows, expected {rows}"
        return None
    return check


def session_targets(s: BidsSession, root: Path) -> list[Target]:
    folder = root / s.folder
    def sidecar(suffix: str, **kw) -> Target:
        relative = f"{s.folder}/{s.stem}_{suffix}"
        return Target(url=REPOSITORY + relative, path=root / relative, label=relative, **kw)
    return [
        Target(url=OBJECTS + s.annex_key, path=folder / Path(s.bdf).name, digest_kind="md5", digest=s.md5,
               size=s.bdf_bytes, label=s.bdf),
        sidecar("task-typing_events.tsv", digest_kind="git-sha1", digest=s.events_git_sha1, size=s.events_bytes),
        sidecar("task-typing_emg.json", check=_json_check("RecordingDuration", s.recording_duration_s)),
        sidecar("task-typing_channels.tsv", check=_tsv_check("name", CHANNELS)),
        sidecar("electrodes.tsv", check=_tsv_check("name", CHANNELS)),
    ]


def top_level_targets(root: Path) -> list[Target]:
    checks = {"participants.tsv": _tsv_check("participant_id"),
              "dataset_description.json": _json_check("BIDSVersion")}
    return [Target(url=REPOSITORY + name, path=root / name, label=name, check=checks.get(name, _json_check()))
            for name in TOP_LEVEL]


def plan(out: str | os.PathLike, *, users=(), splits=()) -> list[Target]:
    """Every file to fetch into the BIDS root ``out`` for the chosen sessions (see the module)."""
    root = Path(out)
    targets = top_level_targets(root)
    for s in select_sessions(users=users, splits=splits):
        targets += session_targets(s, root)
    return targets
