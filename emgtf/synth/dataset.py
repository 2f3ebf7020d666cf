"""Synthetic sessions and data sets on disk, laid out like Meta's release.

A data set folder holds ``<session name>.hdf5`` files (written by ``emgtf.data.write_session``
in the real field order), ``metadata.csv`` and ``split.yaml``; with ``format="bids"`` it is a BIDS
root laid out as the NM000104 release instead (``emgtf.data.bids``), the same two files beside
its subjects. ``generate_from_events`` replays a real session's keystroke timeline. Everything is a deterministic
function of the seed: user ``u``'s identity, anatomy and typing habits come from random streams
keyed by ``(seed, u)``, and session ``s`` from streams keyed by ``(seed, u, s)`` (one per aspect:
schedule, donning, typing, signal). So adding users or sessions leaves the others unchanged, and
changing a signal knob of ``SynthConfig`` leaves every name and keystroke unchanged.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
import tempfile
import time as _time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emgtf import SAMPLE_RATE
from emgtf.data import bids, write_session
from emgtf.data.splits import write_split_file
from emgtf.console import Log, console_log
from emgtf.errors import EmgtfError
from emgtf.paths import cache_dir
from emgtf.synth.anatomy import Anatomy, Donning
from emgtf.synth.knobs import SynthConfig
from emgtf.synth.signal import render
from emgtf.synth.timing import TypingStatistics, typing_statistics
from emgtf.synth.typist import Typist, typing_of

SPLIT_FILE = "split.yaml"
METADATA_FILE = "metadata.csv"
METADATA_COLUMNS = (
    "user", "session", "condition", "split", "start", "end", "duration_mins", "num_keystrokes",
    "num_prompts", "seed", "mean_iki_ms", "rotation_left", "rotation_right",
)

# The embedded default data set of ``python -m emgtf.fit``: one user, sized for CPU training on a
# two-core machine. Bump the version whenever the generator's output changes, so that caches made
# by an older generator are not reused.
# v2: key times on the sample grid, and typists timed like the real data (knobs.V1_TYPING: v1's).
DEFAULT_NAME = "synthetic-default-v2"
DEFAULT_SEED = 0
DEFAULT_TRAIN_SESSIONS = 8
DEFAULT_TRAIN_MINUTES = 4.0
DEFAULT_EVAL_MINUTES = 3.0  # each of the val and the test session
DEFAULT_SPLIT_NAME = "synthetic"
_STALE_PARTIAL_S = 3600.0

# Real session names carry the local (US Pacific, daylight saving) date of the session start.
_PACIFIC = dt.timezone(dt.timedelta(hours=-7))
_FIRST_DAY = dt.datetime(2021, 5, 3, tzinfo=_PACIFIC)

# Random streams: (seed, user, 0, what) for a user, (seed, user, session + 1, what) for a session.
_IDENTITY, _ANATOMY, _TYPIST, _SPLIT, _CALENDAR = 0, 1, 2, 3, 4
_SCHEDULE, _DONNING, _TYPING, _SIGNAL = 0, 1, 2, 3


def _rng(seed: int, user: int, session: int, what: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(user, session, what)))


@dataclass(frozen=True)
class SessionInfo:
    """What ``generate_session`` wrote: one row of ``metadata.csv``."""

    path: Path
    session: str
    user: str
    start: float
    end: float
    duration_mins: float
    num_keystrokes: int
    num_prompts: int
    mean_iki_ms: float
    rotation: tuple[float, float]


def user_identity(seed: int, user: int) -> tuple[str, str]:
    """The 8-digit id and the session-name uuid of synthetic user number ``user``."""
    rng = _rng(seed, user, 0, _IDENTITY)
    user_id = str(int(rng.integers(10_000_000, 100_000_000)))
    return user_id, str(uuid.UUID(bytes=rng.bytes(16), version=4))


def session_name(seed: int, user: int, session: int) -> tuple[str, float]:
    """Name and start time (unix seconds) of session ``session`` of user ``user``, e.g.
    ``2021-06-03-1622765527-keystrokes-dca-study@1-0efbe614-...``. Like the real study: about three
    sessions a day, a rest day every other day."""
    first = _rng(seed, user, 0, _CALENDAR).integers(0, 90)
    rng = _rng(seed, user, session + 1, _SCHEDULE)
    day = _FIRST_DAY + dt.timedelta(days=int(first) + session // 3 + session // 6)
    start = day + dt.timedelta(hours=9 + 2.5 * (session % 3), seconds=float(rng.uniform(0, 3600)))
    unix = round(start.timestamp(), 3)
    stamp = dt.datetime.fromtimestamp(int(unix), _PACIFIC)
    return f"{stamp:%Y-%m-%d}-{int(unix)}-keystrokes-dca-study@1-{user_identity(seed, user)[1]}", unix


FORMATS = ("hdf5", "bids")


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise EmgtfError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")


def _write(out, format: str, *, emg, start: float, typing, name: str, user_id: str, overwrite: bool) -> Path:
    """Writes one rendered session in ``format`` (HDF5 file, or a session of the BIDS root ``out``)."""
    if format == "bids":
        return bids.write_session(out, emg=emg, keystrokes=typing.keystrokes, prompts=typing.prompts,
                                  t0=start, user=user_id, session_name=name, overwrite=overwrite)
    path = Path(out) / f"{name}.hdf5"
    write_session(
        path,
        time=start + np.arange(len(emg), dtype=np.float64) / SAMPLE_RATE,
        emg_left=emg[:, 0],
        emg_right=emg[:, 1],
        keystrokes=typing.keystrokes,
        prompts=typing.prompts,
        session_name=name,
        user=user_id,
        condition="on_keyboard",
        overwrite=overwrite,
    )
    return path


def _check_one_form(out: Path, format: str) -> None:
    """A data root holds one form: writing the other into it would make it unreadable."""
    other = {"bids": "*.hdf5", "hdf5": "sub-*/ses-*"}[format]
    if out.is_dir() and any(out.glob(other)):
        raise EmgtfError(f"output folder {out} holds sessions of the other form ({other}); write the "
                         f"{format} form into another folder")


def _target(out, format: str, name: str, user_id: str) -> Path:
    if format == "bids":
        return bids.bdf_path(out, bids.subject_label(user_id), bids.session_label(name))
    return Path(out) / f"{name}.hdf5"


def generate_session(
    out: str | os.PathLike,
    *,
    seed: int = 0,
    user: int = 0,
    session: int = 0,
    minutes: float = 1.0,
    config: SynthConfig | None = None,
    overwrite: bool = False,
    format: str = "hdf5",
) -> SessionInfo:
    """Writes session ``session`` of synthetic user ``user`` (both numbered from 0) of data set
    ``seed`` as ``out/<session name>.hdf5`` (``format="bids"``: as a session of the BIDS root
    ``out``, see ``emgtf.data.bids``), ``minutes`` long; returns what it wrote."""
    cfg = config or SynthConfig()
    _check_positive(minutes=minutes)
    _check_format(format)
    if int(seed) < 0 or int(user) < 0 or int(session) < 0:
        raise EmgtfError(f"seed, user and session must be >= 0, got {seed}, {user}, {session}")
    user_id, _ = user_identity(seed, user)
    name, start = session_name(seed, user, session)
    path = _target(out, format, name, user_id)
    if path.exists() and not overwrite:
        raise EmgtfError(f"{path} already exists (pass overwrite to replace it)")

    anatomy = Anatomy.sample(_rng(seed, user, 0, _ANATOMY), cfg)
    typist = Typist.sample(_rng(seed, user, 0, _TYPIST), cfg, anatomy.space_hand)
    donning = Donning.sample(_rng(seed, user, session + 1, _DONNING), cfg, anatomy)
    num_samples = max(int(round(minutes * 60 * SAMPLE_RATE)), 2)
    duration_s = num_samples / SAMPLE_RATE
    typing = typist.type_session(_rng(seed, user, session + 1, _TYPING), cfg, start, duration_s)
    emg = render(anatomy, donning, typing, num_samples, start, _rng(seed, user, session + 1, _SIGNAL), cfg)
    path = _write(out, format, emg=emg, start=start, typing=typing, name=name, user_id=user_id,
                  overwrite=overwrite)
    end = start + (num_samples - 1) / SAMPLE_RATE
    return SessionInfo(
        path=path,
        session=name,
        user=user_id,
        start=float(start),
        end=float(end),
        duration_mins=float(end - start) / 60.0,
        num_keystrokes=len(typing.keystrokes),
        num_prompts=len(typing.prompts),
        mean_iki_ms=1000.0 * typist.iki_s,
        rotation=(float(donning.rotation[0]), float(donning.rotation[1])),
    )


def generate_from_events(
    out: str | os.PathLike,
    events: str | os.PathLike,
    *,
    seed: int = 0,
    user: int = 0,
    config: SynthConfig | None = None,
    overwrite: bool = False,
    format: str = "hdf5",
) -> SessionInfo:
    """Writes a synthetic session that types exactly the keystroke timeline of a real session's
    ``events.tsv`` (NM000104 form): its keys at its times, with the EMG of synthetic user
    ``user`` of data set ``seed``. The session keeps the real names: user and start time come from
    the file's ``sub-``/``ses-`` entities (the ``ses-`` label is the unix start), its length from
    the ``_emg.json`` beside it (else one second after the last release). In the BIDS form the
    root's top-level files are written (or updated) too."""
    cfg = config or SynthConfig()
    _check_format(format)
    _check_one_form(Path(out), format)
    events = Path(events)
    keystrokes, prompts = bids.read_events(events)
    if not keystrokes:
        raise EmgtfError(f"{events}: holds no keystroke")
    entities = dict(part.split("-", 1) for part in events.name.split("_") if "-" in part)
    sub, ses = entities.get("sub", ""), entities.get("ses", "")
    if not (sub.isdigit() and ses.isdigit()):
        raise EmgtfError(f"{events}: the file name must carry the sub-<user> and ses-<unix start> entities "
                         "of the release (sub-<user>_ses-<t>_task-typing_events.tsv)")
    sidecar = events.with_name(events.name.replace("_events.tsv", "_emg.json"))
    if sidecar.is_file():
        duration_s, _ = bids.read_emg_json(sidecar)
    else:
        duration_s = max(k["end"] for k in keystrokes) + 1.0
    start = float(int(ses))
    stamp = dt.datetime.fromtimestamp(int(ses), _PACIFIC)
    name = f"{stamp:%Y-%m-%d}-{ses}-keystrokes-dca-study@1-{user_identity(seed, user)[1]}"
    user_id = str(int(sub))
    path = _target(out, format, name, user_id)
    if path.exists() and not overwrite:
        raise EmgtfError(f"{path} already exists (pass overwrite to replace it)")

    anatomy = Anatomy.sample(_rng(seed, user, 0, _ANATOMY), cfg)
    donning = Donning.sample(_rng(seed, user, 1, _DONNING), cfg, anatomy)
    typing = typing_of(keystrokes, prompts, start, anatomy.space_hand)
    num_samples = int(round(duration_s * SAMPLE_RATE))
    emg = render(anatomy, donning, typing, num_samples, start, _rng(seed, user, 1, _SIGNAL), cfg)
    path = _write(out, format, emg=emg, start=start, typing=typing, name=name, user_id=user_id,
                  overwrite=overwrite)
    if format == "bids":
        bids.write_dataset_files(out, [user_id])
    end = start + (num_samples - 1) / SAMPLE_RATE
    presses = np.diff(typing.press)
    return SessionInfo(
        path=path, session=name, user=user_id, start=start, end=end, duration_mins=(end - start) / 60.0,
        num_keystrokes=len(keystrokes), num_prompts=len(prompts),
        mean_iki_ms=float(1000.0 * presses.mean()) if presses.size else float("nan"),
        rotation=(float(donning.rotation[0]), float(donning.rotation[1])),
    )


def typist_statistics(*, users: int = 8, sessions: int = 4, minutes: float = DEFAULT_TRAIN_MINUTES,
                      seed: int = 0, config: SynthConfig | None = None) -> TypingStatistics:
    """The timing statistics (``emgtf.synth.timing``) of the keystrokes that
    ``generate_session`` writes for ``users`` x ``sessions`` sessions of data set ``seed``
    (the same random streams; typed only, no EMG rendered)."""
    cfg = config or SynthConfig()

    def typed():
        for u in range(users):
            anatomy = Anatomy.sample(_rng(seed, u, 0, _ANATOMY), cfg)
            typist = Typist.sample(_rng(seed, u, 0, _TYPIST), cfg, anatomy.space_hand)
            for s in range(sessions):
                _, start = session_name(seed, u, s)
                num_samples = max(int(round(minutes * 60 * SAMPLE_RATE)), 2)
                typing = typist.type_session(_rng(seed, u, s + 1, _TYPING), cfg, start, num_samples / SAMPLE_RATE)
                yield typing.keystrokes, num_samples / SAMPLE_RATE

    return typing_statistics(typed())


def _check_positive(**values) -> None:
    for key, value in values.items():
        if not value > 0:
            raise EmgtfError(f"{key} must be > 0, got {value}")


def split_roles(seed: int, user: int, sessions: int) -> list[str]:
    """The part (train/val/test) of each session of a user: one val and one test session, drawn
    at random like the real single-user split, the rest train; two sessions: train and val; one:
    train."""
    roles = ["train"] * sessions
    if sessions >= 2:
        order = _rng(seed, user, 0, _SPLIT).permutation(sessions)
        roles[int(order[0])] = "val"
        if sessions >= 3:
            roles[int(order[1])] = "test"
    return roles


def _existing_outputs(out: Path) -> list[Path]:
    if not out.is_dir():
        return []
    sessions = sorted(out.glob("*.hdf5")) + sorted(out.glob("sub-*/ses-*/emg/*_emg.bdf"))
    return sessions + [p for p in (out / METADATA_FILE, out / SPLIT_FILE) if p.exists()]


def split_contents(
    *,
    users: int,
    sessions: int,
    minutes: float,
    eval_minutes: float,
    seed: int,
    name: str = DEFAULT_SPLIT_NAME,
) -> dict:
    """The split file of a data set, as keyword arguments of
    ``emgtf.data.splits.write_split_file``, computed without generating anything (session
    names and roles depend on the seed alone)."""
    user_ids = [user_identity(seed, u)[0] for u in range(users)]
    if len(set(user_ids)) != len(user_ids):  # 1 in ~10^7 per pair; never silently merge users
        raise EmgtfError(f"seed {seed} draws the same user id twice; choose another seed")
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for u in range(users):
        for s, role in enumerate(split_roles(seed, u, sessions)):
            parts[role].append(session_name(seed, u, s)[0])
    extra = {"user": user_ids[0]} if users == 1 else {}
    extra["description"] = (
        f"synthetic sEMG (emgtf.synth): seed {seed}, {users} user(s) x {sessions} session(s), "
        f"{minutes:g} min train / {eval_minutes:g} min val and test sessions"
    )
    return {"name": name, **extra, **parts}


def generate_dataset(
    out: str | os.PathLike,
    *,
    users: int = 1,
    sessions: int = DEFAULT_TRAIN_SESSIONS + 2,
    minutes: float = DEFAULT_TRAIN_MINUTES,
    eval_minutes: float | None = None,
    seed: int = 0,
    overwrite: bool = False,
    config: SynthConfig | None = None,
    name: str = DEFAULT_SPLIT_NAME,
    log=None,
    format: str = "hdf5",
) -> Path:
    """Writes a synthetic data set into folder ``out``; returns its split file.

    ``users`` users with ``sessions`` sessions each: the train sessions ``minutes`` long, the val
    and test session of each user (see ``split_roles``) ``eval_minutes`` long (default:
    ``minutes``). A folder that already holds session files, ``metadata.csv`` or ``split.yaml`` is
    an error unless ``overwrite`` (which replaces the files of the same names and leaves other
    files alone). ``log`` (e.g. ``print``) receives one line per session written. ``format="bids"``
    writes ``out`` as a BIDS root laid out as the release (NM000104), with ``metadata.csv`` and
    ``split.yaml`` beside the subjects (listed in ``.bidsignore``).
    """
    out = Path(out)
    _check_format(format)
    eval_minutes = minutes if eval_minutes is None else eval_minutes
    _check_positive(users=users, sessions=sessions, minutes=minutes, eval_minutes=eval_minutes)
    if int(seed) < 0:
        raise EmgtfError(f"seed must be >= 0, got {seed}")
    if out.exists() and not out.is_dir():
        raise EmgtfError(f"output folder {out} is a file")
    _check_one_form(out, format)
    existing = _existing_outputs(out)
    if existing and not overwrite:
        raise EmgtfError(
            f"output folder {out} already holds {len(existing)} data set file(s) (e.g. {existing[0].name}); "
            "pass --overwrite (overwrite=True) to replace them"
        )
    split = split_contents(users=users, sessions=sessions, minutes=minutes, eval_minutes=eval_minutes,
                           seed=seed, name=name)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for u in range(users):
        for s, role in enumerate(split_roles(seed, u, sessions)):
            t = _time.perf_counter()
            info = generate_session(
                out, seed=seed, user=u, session=s, minutes=eval_minutes if role != "train" else minutes,
                config=config, overwrite=overwrite, format=format,
            )
            rows.append((info, role))
            if log is not None:
                log(f"wrote {info.path} ({role}, {info.duration_mins:.2f} min, {info.num_keystrokes} "
                    f"keystrokes, {_time.perf_counter() - t:.1f} s)")

    with open(out / METADATA_FILE, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(METADATA_COLUMNS)
        for info, role in rows:
            w.writerow([
                info.user, info.session, "on_keyboard", role, f"{info.start:.6f}", f"{info.end:.6f}",
                f"{info.duration_mins:.6f}", info.num_keystrokes, info.num_prompts, seed,
                f"{info.mean_iki_ms:.1f}", f"{info.rotation[0]:.3f}", f"{info.rotation[1]:.3f}",
            ])
    if format == "bids":
        bids.write_dataset_files(out, sorted({info.user for info, _ in rows}),
                                 extra_ignored=(METADATA_FILE, SPLIT_FILE))
    return write_split_file(out / SPLIT_FILE, **split)


def default_dataset(*, log: Log | None = None) -> tuple[Path, Path]:
    """The embedded default data set: ``(root, split file)``, generated on first use into
    ``cache_dir() / DEFAULT_NAME`` and reused after.

    It is generated into a temporary folder beside it and renamed into place when complete, so an
    interrupted first run never leaves a half data set behind (and two processes racing keep one).
    ``log`` (``emgtf.console``) hears that generation starts, as a warning.
    """
    root = cache_dir() / DEFAULT_NAME
    split = root / SPLIT_FILE
    if split.is_file():
        return root, split
    root.parent.mkdir(parents=True, exist_ok=True)
    minutes = DEFAULT_TRAIN_SESSIONS * DEFAULT_TRAIN_MINUTES + 2 * DEFAULT_EVAL_MINUTES
    megabytes = minutes * 60 * SAMPLE_RATE * (8 + 2 * 16 * 4) / 1e6  # float64 time + 32 float32
    # None: emgtf.synth's console (stderr), since the minutes-long wait must be announced to the
    # person whichever command reached this (every one that reads a null data.root).
    log = log if log is not None else console_log("emgtf.synth")
    log(f"generating the default synthetic data set ({DEFAULT_TRAIN_SESSIONS + 2} sessions, "
        f"{minutes:g} min of sEMG, ~{megabytes:.0f} MB) in {root}", warning=True)
    # Leftovers of runs killed outright (no clean-up ran); a live run touches its folder every
    # few seconds.
    for stale in root.parent.glob(f".{DEFAULT_NAME}.partial-*"):
        if _time.time() - stale.stat().st_mtime > _STALE_PARTIAL_S:
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_NAME}.partial-", dir=root.parent))
    try:
        generate_default_into(tmp)
        try:
            os.rename(tmp, root)
        except OSError:
            if not split.is_file():  # not a lost race: a stale, incomplete folder is in the way
                problem = f"{root} exists but holds no {SPLIT_FILE}; remove it and run again"
                raise EmgtfError(problem) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root, split


def default_split_contents() -> dict:
    """The split file of the default data set (shipped as configs/splits/synthetic.yaml)."""
    return split_contents(
        users=1, sessions=DEFAULT_TRAIN_SESSIONS + 2, minutes=DEFAULT_TRAIN_MINUTES,
        eval_minutes=DEFAULT_EVAL_MINUTES, seed=DEFAULT_SEED, name=DEFAULT_SPLIT_NAME,
    )


def generate_default_into(out: str | os.PathLike, *, overwrite: bool = False, log=None) -> Path:
    """Writes the default data set (see ``default_dataset``) into ``out``; returns its split."""
    return generate_dataset(
        out,
        users=1,
        sessions=DEFAULT_TRAIN_SESSIONS + 2,
        minutes=DEFAULT_TRAIN_MINUTES,
        eval_minutes=DEFAULT_EVAL_MINUTES,
        seed=DEFAULT_SEED,
        overwrite=overwrite,
        name=DEFAULT_SPLIT_NAME,
        log=log,
    )
