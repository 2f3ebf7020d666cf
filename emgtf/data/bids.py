"""The BIDS release of emg2qwerty (NEMAR NM000104): reading and writing its sessions.

A BIDS data root holds ``sub-<user>/ses-<t>/emg/sub-<user>_ses-<t>_task-typing_{emg.bdf,emg.json,
channels.tsv,events.tsv}`` and ``sub-<user>_ses-<t>_electrodes.tsv``, plus the top-level
``dataset_description.json`` and ``participants.tsv``. ``<user>`` is the HDF5 ``user`` as 8 digits
(leading zeros kept), ``<t>`` the 4th dash-separated field of the HDF5 session name.

A ``BIDSSession`` has the methods and attributes of ``emgtf.data.session.EMGSession``
(``EMGSession(path)`` opens one when ``path`` is a session's ``.bdf``, its ``emg`` folder or its
``ses-`` folder), so the pipeline, inspect, transcribe and stream read both forms through the same
code. What differs from the HDF5 twin:

- the signal is the BDF's 24-bit integers scaled by one physical range for all 32 channels (as
  the converter wrote it), read in the file's physical units (the HDF5 units: pyedflib applies the
  header's scale and no unit conversion); the file is padded to whole 1-s records, so it is
  trimmed to ``RecordingDuration`` x 2000 samples;
- there is no absolute time: sample ``i`` is at ``i / 2000`` s, and a key press at its event's
  ``sample / 2000`` (so it lies exactly on its sample);
- channels ``EMG0``..``EMG15`` are the left band's electrodes E0..E15, ``EMG16``..``EMG31`` the
  right band's (``channels.tsv`` says so per channel, and is checked);
- ``events.tsv`` is read with quoting off (a key can be a bare ``"``), its prompts' literal
  ``\\n`` turned back into a newline.

The BDF is read with pyedflib (EDFlib): it reads any sample range of one channel without loading
the file, writes BDF (the synthetic generator's BIDS form), and returns the header's physical
values unconverted (MNE would return volts, 1e-6 of the HDF5 values). EDFlib opens a file once
per process and at most 64 files at once, so readers share a small pool of open files behind
one lock.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import json
import math
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emgtf import NUM_BANDS, NUM_CHANNELS, SAMPLE_RATE
from emgtf.data.session_base import SessionBase
from emgtf.errors import EmgtfError, SessionFileError
from emgtf.files import atomic_write, atomic_write_text

TASK = "typing"
EVENT_COLUMNS = ("onset", "duration", "sample", "value", "key", "prompt_text")
CHANNEL_COLUMNS = ("name", "type", "units", "signal_electrode", "reference", "group", "target_muscle")
BANDS = ("left", "right")
NUM_SIGNALS = NUM_BANDS * NUM_CHANNELS
DIGITAL_RANGE = (-(2**23), 2**23 - 1)  # BDF: 24-bit two's complement
NA = "n/a"
CONDITION = "on_keyboard"
_LABEL = re.compile(r"^EMG(\d+)$")
_MAX_OPEN = 16  # EDFlib allows 64 open files per process


# --- layout ---------------------------------------------------------------------------------
def subject_label(user) -> str:
    """``sub-`` label of an HDF5 user id: 8 digits, leading zeros kept (5775561 -> 05775561)."""
    text = str(user).strip()
    return f"{int(text):08d}" if text.isdigit() else text


def session_label(session_name: str) -> str:
    """``ses-`` label of an HDF5 session name: its 4th dash-separated field (the unix start)."""
    fields = Path(session_name).name.split("-")
    if len(fields) < 4 or not fields[3]:
        raise EmgtfError(f"session name {session_name!r} has no 4th dash-separated field (the BIDS ses- label)")
    return fields[3]


def session_prefix(sub: str, ses: str) -> str:
    return f"sub-{sub}_ses-{ses}"


def session_dir(root, sub: str, ses: str) -> Path:
    return Path(root) / f"sub-{sub}" / f"ses-{ses}" / "emg"


def bdf_path(root, sub: str, ses: str) -> Path:
    return session_dir(root, sub, ses) / f"{session_prefix(sub, ses)}_task-{TASK}_emg.bdf"


def is_bids_session(path) -> bool:
    """Whether ``path`` names a BIDS session: its ``.bdf``, its ``emg`` folder or ``ses-`` folder."""
    p = Path(path)
    if p.suffix.lower() == ".bdf":
        return True
    return p.is_dir() and (p.name.startswith("ses-") or (p.name == "emg" and p.parent.name.startswith("ses-")))


def _has_hdf5(root: Path) -> bool:
    return any(root.glob("*.hdf5"))


def _has_bids(root: Path) -> bool:
    return (root / "dataset_description.json").is_file() or any(
        p.is_dir() for p in root.glob("sub-*/ses-*")
    )


def root_form(root) -> str:
    """``"bids"`` or ``"hdf5"``: the form of a data root (a root with neither is taken as HDF5,
    whose missing files are then reported by name). Holding both is a one-line error."""
    root = Path(root)
    if not root.is_dir():
        return "hdf5"
    hdf5, bids = _has_hdf5(root), _has_bids(root)
    if hdf5 and bids:
        raise EmgtfError(
            f"data root {root} holds both HDF5 session files (*.hdf5) and a BIDS dataset (sub-*/ses-*); "
            "keep one form per data root"
        )
    return "bids" if bids else "hdf5"


def find_session(root, session_name: str, user=None) -> Path | None:
    """The BDF of the HDF5 session ``session_name`` (of ``user`` when known) in BIDS root
    ``root``, or None if it is not there. Without a user the ``ses-`` label is looked up under
    every subject; two subjects holding it is a one-line error."""
    root = Path(root)
    ses = session_label(session_name)
    if user is not None:
        path = bdf_path(root, subject_label(user), ses)
        return path if path.is_file() else None
    found = sorted(root.glob(f"sub-*/ses-{ses}/emg/*_emg.bdf"))
    if len(found) > 1:
        raise EmgtfError(
            f"data root {root}: session {session_name} (ses-{ses}) is under several subjects "
            f"({', '.join(p.parts[-4] for p in found)}); name its user in the split file"
        )
    return found[0] if found else None


# --- sidecars -------------------------------------------------------------------------------
def _read_tsv(path: Path, columns: Sequence[str]) -> list[dict]:
    """Rows of a BIDS TSV with quoting off; the header must hold ``columns`` (in any order)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except FileNotFoundError:
        raise SessionFileError(path, "no such file (every BIDS session needs it)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SessionFileError(path, f"cannot be read ({e})") from None
    if not rows:
        raise SessionFileError(path, "is empty (no header line)")
    header = rows[0]
    missing = [c for c in columns if c not in header]
    if missing:
        raise SessionFileError(path, f"header has no column {missing[0]!r} (has {', '.join(header)})")
    out = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise SessionFileError(path, f"line {number} has {len(row)} fields, the header {len(header)}")
        out.append({"_line": number, **dict(zip(header, row))})
    return out


def _number(path: Path, row: dict, column: str, kind=float):
    text = row[column]
    try:
        value = kind(text)
    except ValueError:
        raise SessionFileError(path, f"line {row['_line']}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise SessionFileError(path, f"line {row['_line']}: {column} {text!r} is not finite")
    return value


def decode_text(text: str) -> str:
    """A ``prompt_text`` cell as the HDF5 payload held it: literal ``\\n`` is a newline."""
    return text.replace("\\r", "\r").replace("\\t", "\t").replace("\\n", "\n")


def encode_text(text: str) -> str:
    """The inverse of ``decode_text`` (a TSV cell holds no tab or line break)."""
    return text.replace("\r", "\\r").replace("\t", "\\t").replace("\n", "\\n")


def read_events(path, sample_rate: int = SAMPLE_RATE) -> tuple[list[dict], list[dict]]:
    """``(keystrokes, prompts)`` of an ``events.tsv`` in the HDF5 attributes' form, times in
    seconds from the first sample (a press at ``sample / sample_rate``)."""
    path = Path(path)
    keystrokes, prompts = [], []
    for row in _read_tsv(path, EVENT_COLUMNS):
        sample = _number(path, row, "sample", int)
        onset = _number(path, row, "onset")
        duration = _number(path, row, "duration")
        start = sample / sample_rate
        if abs(onset - start) > 1.0 / sample_rate:
            raise SessionFileError(path, f"line {row['_line']}: onset {onset} is not sample {sample} / {sample_rate}")
        value = row["value"]
        if value == "prompt":
            text = row["prompt_text"]
            payload = None if text == NA else {"text": decode_text(text)}
            prompts.append({"name": "text_prompt", "start": start, "end": start + duration, "payload": payload})
        elif value.startswith("keystroke_"):
            key = row["key"]
            if key in ("", NA):
                raise SessionFileError(path, f"line {row['_line']}: keystroke row without a key")
            keystrokes.append({"key": key, "start": start, "end": start + duration})
        else:
            raise SessionFileError(
                path, f"line {row['_line']}: value {value!r} is neither 'prompt' nor 'keystroke_<key>'"
            )
    return keystrokes, prompts


def _read_sidecar_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SessionFileError(path, "no such file (every BIDS session needs it)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SessionFileError(path, f"is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise SessionFileError(path, "must hold a JSON object")
    return doc


def read_emg_json(path) -> tuple[float, int]:
    """``(RecordingDuration, SamplingFrequency)`` of an ``_emg.json``, checked."""
    path = Path(path)
    doc = _read_sidecar_json(path)
    duration = doc.get("RecordingDuration")
    if duration is None:
        raise SessionFileError(path, "has no RecordingDuration (the length of the signal in the padded BDF)")
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration > 0:
        raise SessionFileError(path, f"RecordingDuration must be a positive number, got {duration!r}")
    rate = doc.get("SamplingFrequency", SAMPLE_RATE)
    if rate != SAMPLE_RATE:
        raise SessionFileError(path, f"SamplingFrequency is {rate}, expected {SAMPLE_RATE}")
    count = doc.get("EMGChannelCount", NUM_SIGNALS)
    if count != NUM_SIGNALS:
        raise SessionFileError(path, f"EMGChannelCount is {count}, expected {NUM_SIGNALS}")
    return float(duration), int(rate)


def read_channels(path) -> dict[str, tuple[int, int]]:
    """``{channel name: (band, electrode)}`` from a ``channels.tsv`` (group left/right,
    signal_electrode E0..E15); each band's 16 electrodes exactly once."""
    path = Path(path)
    mapping = {}
    for row in _read_tsv(path, ("name", "signal_electrode", "group")):
        group, electrode = row["group"], row["signal_electrode"]
        match = re.fullmatch(r"E(\d+)", electrode)
        if group not in BANDS or match is None or int(match.group(1)) >= NUM_CHANNELS:
            raise SessionFileError(
                path, f"line {row['_line']}: channel {row['name']} has group {group!r} and electrode "
                f"{electrode!r}; expected left/right and E0..E{NUM_CHANNELS - 1}"
            )
        mapping[row["name"]] = (BANDS.index(group), int(match.group(1)))
    if len(mapping) != NUM_SIGNALS or len(set(mapping.values())) != NUM_SIGNALS:
        raise SessionFileError(
            path, f"lists {len(mapping)} channels; expected each of the 2 x {NUM_CHANNELS} electrodes once"
        )
    return mapping


def default_channels() -> dict[str, tuple[int, int]]:
    """The release's channel layout: EMG0..15 the left band's E0..15, EMG16..31 the right's."""
    return {f"EMG{i}": divmod(i, NUM_CHANNELS) for i in range(NUM_SIGNALS)}


# --- the open BDF files ---------------------------------------------------------------------
class _Pool:
    """Open pyedflib readers by file, least recently used closed first, all use behind one lock
    (EDFlib opens a file once per process, at most 64 at once)."""

    def __init__(self, size: int):
        self.size = size
        self.lock = threading.RLock()
        self.open: collections.OrderedDict = collections.OrderedDict()

    def reader(self, path: Path):
        """The open reader of ``path``; call with the lock held. A file replaced since it was
        opened (another inode, size or time) is opened afresh."""
        import pyedflib

        key = str(path)
        try:
            stat = os.stat(key)
        except OSError as e:
            raise SessionFileError(path, f"cannot be read ({e.strerror})") from None
        signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        held = self.open.get(key)
        if held is not None:
            if held[1] == signature:
                self.open.move_to_end(key)
                return held[0]
            self.forget(path)
        while len(self.open) >= self.size:
            _, (old, _) = self.open.popitem(last=False)
            old.close()
        try:
            edf = pyedflib.EdfReader(key)
        except OSError as e:
            problem = str(e).splitlines()[0] if str(e) else type(e).__name__
            problem = problem.replace(f"{key}: ", "")
            raise SessionFileError(path, f"cannot be read as BDF ({problem}; truncated?)") from None
        self.open[key] = (edf, signature)
        return edf

    def forget(self, path: Path) -> None:
        with self.lock:
            held = self.open.pop(str(path), None)
            if held is not None:
                held[0].close()


_POOL = _Pool(_MAX_OPEN)


@contextlib.contextmanager
def open_bdf(path):
    """The pyedflib reader of a BDF, from the shared pool, for the block (EDFlib refuses a second
    open of a file the pool holds; use this instead of ``pyedflib.EdfReader``)."""
    with _POOL.lock:
        yield _POOL.reader(Path(path))


class _Rows:
    """A BIDS session's samples as compound rows ``time, emg_left, emg_right``: what the
    pipeline's reader takes from an HDF5 ``timeseries`` dataset, sliced the same way."""

    def __init__(self, session: "BIDSSession"):
        self.session = session

    def __getitem__(self, index):
        if not isinstance(index, slice):
            raise TypeError("BIDS rows are read by slice")
        start, stop, _ = index.indices(len(self.session))
        return self.session.rows(start, stop)


class BIDSSession(SessionBase):
    """One session of the BIDS release, opened read-only; the interface of
    ``emgtf.data.session.EMGSession``. ``path``: the session's ``.bdf``, ``emg`` folder or
    ``ses-`` folder; the sidecars are found beside the BDF."""


    def __init__(self, path: str | os.PathLike, *, keys: bool = True):
        """``keys=False`` opens the signal only (no events read: the pipeline's reader, whose
        labels come from the window index, opens sessions again and again)."""
        self.path = self._bdf_of(Path(path))
        stem = self.path.name[: -len("_emg.bdf")]  # sub-X_ses-T_task-typing
        folder = self.path.parent
        self.files = {
            "emg.json": folder / f"{stem}_emg.json",
            "events.tsv": folder / f"{stem}_events.tsv",
            "channels.tsv": folder / f"{stem}_channels.tsv",
        }
        entities = dict(part.split("-", 1) for part in stem.split("_") if "-" in part)
        self.subject, self.session = entities.get("sub", ""), entities.get("ses", "")
        duration, rate = read_emg_json(self.files["emg.json"])
        self.keystrokes, self.prompts = read_events(self.files["events.tsv"], rate) if keys else ([], [])
        channels = self.files["channels.tsv"]
        self._channels = read_channels(channels) if channels.is_file() else default_channels()
        self.session_name = session_prefix(self.subject, self.session)
        self.user = str(int(self.subject)) if self.subject.isdigit() else self.subject
        self.condition = CONDITION
        self.duration_mins = duration / 60.0
        self._num_samples = int(round(duration * SAMPLE_RATE))
        with _POOL.lock:
            self._order = self._check_signal(_POOL.reader(self.path))
        self._timestamps = None
        self._closed = False

    @staticmethod
    def _bdf_of(path: Path) -> Path:
        if path.suffix.lower() == ".bdf":
            if not path.is_file():
                raise SessionFileError(path, "no such file")
            return path
        folder = path / "emg" if (path / "emg").is_dir() else path
        found = sorted(folder.glob("*_emg.bdf"))
        if len(found) != 1:
            what = "no" if not found else f"{len(found)}"
            raise SessionFileError(path, f"{what} *_emg.bdf file(s) in {folder}; a BIDS session has one")
        return found[0]

    def _check_signal(self, edf) -> list[tuple[int, int, int]]:
        """(signal index, band, electrode) of every channel, checked against the release."""
        labels = [edf.getLabel(i).strip() for i in range(edf.signals_in_file)]
        if len(labels) != NUM_SIGNALS:
            raise SessionFileError(self.path, f"has {len(labels)} channels, expected {NUM_SIGNALS} (EMG0..EMG31)")
        order = []
        for i, label in enumerate(labels):
            if label not in self._channels:
                raise SessionFileError(self.path, f"channel {i} is {label!r}, not one of EMG0..EMG31 in channels.tsv")
            rate = edf.getSampleFrequency(i)
            if rate != SAMPLE_RATE:
                raise SessionFileError(self.path, f"channel {label} is sampled at {rate:g} Hz, expected {SAMPLE_RATE}")
            order.append((i, *self._channels[label]))
        if len({label for label in labels}) != NUM_SIGNALS:
            raise SessionFileError(self.path, "names a channel twice")
        held = int(edf.getNSamples()[0])
        if held < self._num_samples:
            raise SessionFileError(
                self.path, f"holds {held} samples per channel, fewer than RecordingDuration x {SAMPLE_RATE} = "
                f"{self._num_samples} ({self.files['emg.json'].name}); truncated?"
            )
        return order

    # --- context manager ----------------------------------------------------------------------
    def close(self) -> None:
        self._closed = True

    def __repr__(self) -> str:
        return f"BIDSSession({str(self.path)!r}, session_name={self.session_name!r}, samples={len(self)})"

    # --- samples ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._num_samples

    @property
    def timestamps(self) -> np.ndarray:
        """Seconds from the first sample (the BIDS form keeps no absolute time)."""
        if self._timestamps is None:
            self._timestamps = np.arange(len(self), dtype=np.float64) / SAMPLE_RATE
        return self._timestamps

    @property
    def row_dtype(self) -> np.dtype:
        return np.dtype([("time", np.float64), ("emg_left", np.float32, (NUM_CHANNELS,)),
                         ("emg_right", np.float32, (NUM_CHANNELS,))])

    @property
    def timeseries(self) -> _Rows:
        """The samples as compound rows, sliced like an HDF5 ``timeseries`` dataset."""
        return _Rows(self)

    def time_range(self) -> tuple[float, float] | None:
        n = len(self)
        return None if n == 0 else (0.0, (n - 1) / SAMPLE_RATE)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """EMG samples ``[start, stop)`` by index as float32 (n, 2, 16), left band first, in the
        BDF's physical units; only those samples are read from the file."""
        start, stop, _ = slice(start, stop).indices(len(self))
        n = max(stop - start, 0)
        out = np.empty((n, NUM_BANDS, NUM_CHANNELS), np.float32)
        if n == 0:
            return out
        with _POOL.lock:
            edf = _POOL.reader(self.path)
            try:
                for signal, band, electrode in self._order:
                    out[:, band, electrode] = edf.readSignal(signal, start, n)
            except (OSError, ValueError) as e:
                _POOL.forget(self.path)
                raise SessionFileError(self.path, f"cannot read samples {start}..{stop} ({e})") from None
        return out

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` as compound rows ``time, emg_left, emg_right``."""
        emg = self.read(start, stop)
        table = np.empty(len(emg), self.row_dtype)
        table["time"] = np.arange(start, start + len(emg), dtype=np.float64) / SAMPLE_RATE
        table["emg_left"] = emg[:, 0]
        table["emg_right"] = emg[:, 1]
        return table

    def slice(self, start_t: float = -math.inf, end_t: float = math.inf) -> np.ndarray:
        i0, i1 = self.index_range(start_t, end_t)
        return self.rows(i0, i1)


def companion_files(bdf) -> list[Path]:
    """The sidecars a BDF's session index depends on (for the index cache's key)."""
    bdf = Path(bdf)
    stem = bdf.name[: -len("_emg.bdf")] if bdf.name.endswith("_emg.bdf") else bdf.stem
    return [bdf.parent / f"{stem}_events.tsv", bdf.parent / f"{stem}_emg.json"]


# --- writing ----------------------------------------------------------------------------------
def physical_range(emg: np.ndarray) -> tuple[float, float]:
    """One symmetric physical range for all channels, whole numbers (an EDF header field holds 8
    characters: a rounded range would scale the samples by a value other than the one written)."""
    peak = float(np.max(np.abs(emg))) if emg.size else 0.0
    peak = max(float(math.ceil(peak)), 1.0)
    return -peak, peak


def quantize(emg: np.ndarray, phys: tuple[float, float]) -> np.ndarray:
    """int32 digital values of ``emg`` in physical range ``phys`` (nearest step)."""
    lo, hi = phys
    dmin, dmax = DIGITAL_RANGE
    scale = (dmax - dmin) / (hi - lo)
    return np.clip(np.rint((emg.astype(np.float64) - lo) * scale + dmin), dmin, dmax).astype(np.int32)


def quantization_step(phys: tuple[float, float]) -> float:
    return (phys[1] - phys[0]) / (DIGITAL_RANGE[1] - DIGITAL_RANGE[0])


def write_bdf(path, emg: np.ndarray, *, phys: tuple[float, float] | None = None) -> tuple[float, float]:
    """Writes ``emg`` (n, 2, 16) as a 32-channel BDF at 2 kHz in 1-s records (zero-padded to a
    whole second), ``EMG0..15`` the left band; returns the physical range. Atomic."""
    import pyedflib

    emg = np.asarray(emg, np.float32)
    if emg.ndim != 3 or emg.shape[1:] != (NUM_BANDS, NUM_CHANNELS):
        raise ValueError(f"emg must have shape (n, {NUM_BANDS}, {NUM_CHANNELS}), got {emg.shape}")
    phys = physical_range(emg) if phys is None else phys
    flat = emg.reshape(len(emg), NUM_SIGNALS)
    records = max(math.ceil(len(flat) / SAMPLE_RATE), 1)
    zero = quantize(np.zeros(1, np.float32), phys)[0]

    def write(tmp):
        writer = pyedflib.EdfWriter(str(tmp), NUM_SIGNALS, file_type=pyedflib.FILETYPE_BDF)
        try:
            for i in range(NUM_SIGNALS):
                writer.setSignalHeader(i, {
                    "label": f"EMG{i}", "dimension": "uV", "sample_frequency": SAMPLE_RATE,
                    "physical_min": phys[0], "physical_max": phys[1],
                    "digital_min": DIGITAL_RANGE[0], "digital_max": DIGITAL_RANGE[1],
                    "transducer": "", "prefilter": "",
                })
            for r in range(records):
                block = np.full((SAMPLE_RATE, NUM_SIGNALS), zero, np.int32)
                chunk = flat[r * SAMPLE_RATE : (r + 1) * SAMPLE_RATE]
                block[: len(chunk)] = quantize(chunk, phys)
                writer.blockWriteDigitalSamples(np.ascontiguousarray(block.T).ravel())
        finally:
            writer.close()

    _POOL.forget(Path(path))
    atomic_write(path, write)
    return phys


def _fmt(x: float) -> str:
    return repr(round(float(x), 6))


def events_rows(keystrokes: Sequence[dict], prompts: Sequence[dict], t0: float,
                sample_rate: int = SAMPLE_RATE) -> list[list[str]]:
    """``events.tsv`` rows (header first) in the release's format for keystrokes and prompts with
    times in the seconds of ``t0`` (the time of sample 0): ``sample`` the nearest sample,
    ``onset`` = sample / rate, ``duration`` = release - press."""
    events = []
    for p in prompts:
        sample = int(round((p["start"] - t0) * sample_rate))
        payload = p.get("payload")
        text = encode_text(payload["text"]) if isinstance(payload, dict) and payload.get("text") is not None else NA
        events.append((sample, 0, p["end"] - p["start"], "prompt", NA, text))
    for k in keystrokes:
        sample = int(round((k["start"] - t0) * sample_rate))
        events.append((sample, 1, k["end"] - k["start"], f"keystroke_{k['key']}", k["key"], NA))
    events.sort(key=lambda e: (e[0], e[1]))
    rows = [list(EVENT_COLUMNS)]
    for sample, _, duration, value, key, text in events:
        rows.append([repr(sample / sample_rate), _fmt(duration), str(sample), value, key, text])
    return rows


def _tsv(rows) -> str:
    return "".join("\t".join(r) + "\n" for r in rows)


def emg_json(duration_s: float) -> dict:
    """An ``_emg.json`` as the release writes it."""
    return {
        "TaskName": TASK,
        "TaskDescription": "Touch typing on a QWERTY keyboard while wearing EMG wristbands. "
                           "Participants typed prompted text.",
        "InstitutionName": "emgtf synthetic data",
        "Manufacturer": "emgtf.synth",
        "ManufacturersModelName": "synthetic sEMG",
        "SamplingFrequency": SAMPLE_RATE,
        "PowerLineFrequency": 60,
        "HardwareFilters": {"Highpass": {"CutoffHz": 20}, "Lowpass": {"CutoffHz": 850}},
        "SoftwareFilters": NA,
        "RecordingType": "continuous",
        "RecordingDuration": round(float(duration_s), 6),
        "EMGChannelCount": NUM_SIGNALS,
        "EMGPlacementScheme": "Other",
        "EMGPlacementSchemeDescription": "Two wristbands with 16 dry electrodes each, placed on left "
                                         "and right wrists. See channels.tsv for details.",
        "EMGReference": "bipolar",
        "EMGGround": NA,
    }


def channels_rows() -> list[list[str]]:
    rows = [list(CHANNEL_COLUMNS)]
    for i in range(NUM_SIGNALS):
        band, electrode = divmod(i, NUM_CHANNELS)
        rows.append([f"EMG{i}", "EMG", NA, f"E{electrode}", "bipolar", BANDS[band], "forearm muscles"])
    return rows


# Electrode positions as the release's electrodes.tsv gives them (percent of each forearm's
# coordinate system), E0..E15 of each band.
_ELECTRODE_XY = {
    "left": [(0, 50), (5, 30), (20, 10), (30, 0), (40, 5), (50, 10), (70, 20), (90, 30), (100, 40),
             (90, 60), (80, 80), (70, 100), (60, 100), (50, 100), (40, 100), (20, 90)],
    "right": [(100, 50), (95, 30), (80, 10), (70, 0), (60, 5), (50, 10), (30, 20), (10, 30), (0, 40),
              (10, 60), (20, 80), (30, 100), (50, 100), (70, 100), (80, 100), (80, 90)],
}


def electrodes_rows() -> list[list[str]]:
    rows = [["name", "x", "y", "z", "coordinate_system", "group"]]
    for band in BANDS:
        for e, (x, y) in enumerate(_ELECTRODE_XY[band]):
            rows.append([f"E{e}", str(x), str(y), "10", f"{band}Forearm", band])
    return rows


def write_session(
    root,
    *,
    emg: np.ndarray,
    keystrokes: Sequence[dict],
    prompts: Sequence[dict],
    t0: float,
    user,
    session_name: str,
    overwrite: bool = False,
) -> Path:
    """Writes one session into BIDS root ``root`` as the release has it: the BDF (quantised with
    one physical range over all channels, padded to whole seconds) and its sidecars; the events
    of ``keystrokes``/``prompts`` (HDF5 form, times in the seconds of ``t0``, the time of sample 0).
    Returns the BDF's path. The dataset's top-level files: ``write_dataset_files``."""
    sub, ses = subject_label(user), session_label(session_name)
    bdf = bdf_path(root, sub, ses)
    if bdf.exists() and not overwrite:
        raise SessionFileError(bdf, "already exists (pass overwrite to replace it)")
    folder = bdf.parent
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{session_prefix(sub, ses)}_task-{TASK}"
    emg = np.asarray(emg, np.float32)
    write_bdf(bdf, emg)
    atomic_write_text(folder / f"{stem}_emg.json", json.dumps(emg_json(len(emg) / SAMPLE_RATE), indent=2))
    atomic_write_text(folder / f"{stem}_channels.tsv", _tsv(channels_rows()))
    atomic_write_text(folder / f"{session_prefix(sub, ses)}_electrodes.tsv", _tsv(electrodes_rows()))
    atomic_write_text(folder / f"{stem}_events.tsv", _tsv(events_rows(keystrokes, prompts, t0)))
    return bdf


DATASET_DESCRIPTION = {
    "Name": "emgtf synthetic sEMG typing (emg2qwerty layout, NM000104 form)",
    "BIDSVersion": "1.11.0",
    "DatasetType": "raw",
    "License": "CC0",
    "Authors": ["emgtf.synth"],
    "GeneratedBy": [{"Name": "emgtf.synth"}],
}


def write_dataset_files(root, users: Sequence, *, extra_ignored: Sequence[str] = ()) -> None:
    """The top-level files: ``dataset_description.json`` (kept if present), ``participants.tsv``
    (the users added to those already listed), ``task-typing_events.json`` and a ``.bidsignore``
    naming ``extra_ignored`` (emgtf's split and metadata files)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    description = root / "dataset_description.json"
    if not description.exists():
        atomic_write_text(description, json.dumps(DATASET_DESCRIPTION, indent=2) + "\n")
    participants = root / "participants.tsv"
    listed = {}
    if participants.is_file():
        for row in _read_tsv(participants, ("participant_id",)):
            listed[row["participant_id"]] = [row.get("age", NA), row.get("sex", NA)]
    for user in users:
        listed.setdefault(f"sub-{subject_label(user)}", [NA, NA])
    rows = [["participant_id", "age", "sex"]] + [[p, *listed[p]] for p in sorted(listed)]
    atomic_write_text(participants, _tsv(rows))
    events_doc = {
        "onset": {"Description": "Event onset time", "Units": "seconds"},
        "duration": {"Description": "Event duration", "Units": "seconds"},
        "sample": {"Description": "Event onset sample (at 2000 Hz)", "Units": "samples"},
        "value": {"Description": "Event type: keystroke_<key> for key presses, prompt for text prompts"},
        "key": {"Description": "Key pressed (for keystroke events only)"},
        "prompt_text": {"Description": "Text prompt displayed to participant (for prompt events only)"},
    }
    atomic_write_text(root / f"task-{TASK}_events.json", json.dumps(events_doc, indent=2) + "\n")
    if extra_ignored:
        atomic_write_text(root / ".bidsignore", "".join(f"{name}\n" for name in extra_ignored))
