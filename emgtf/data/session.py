"""emg2qwerty session files (HDF5): reading, ground truth and writing.

A session file holds group ``emg2qwerty`` with dataset ``timeseries``, a compound array of
``time`` (float64 unix seconds), ``emg_left`` and ``emg_right`` (float32, 16 channels each), in any
field order, and the group attributes ``session_name``, ``user``, ``condition``,
``duration_mins``, ``keystrokes`` (JSON) and ``prompts`` (JSON). The format is that of Meta's emg2qwerty release (Sivakumar et al., 2024).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from emgtf import NUM_CHANNELS
from emgtf.data.session_base import GroundTruth, SessionBase  # GroundTruth: re-exported, its old home
from emgtf.errors import SessionFileError

GROUP = "emg2qwerty"
TIMESERIES = "timeseries"
FIELDS = ("time", "emg_left", "emg_right")
# The order Meta's released files store the compound fields in.
REAL_FIELD_ORDER = ("emg_right", "time", "emg_left")
# The largest EMG magnitude emgtf accepts. Real EMG is of order 1e1..1e4; the spectrogram sums the
# squares of n_fft samples, which overflows float32 (3.4e38) above about 2e18, and the model
# would then emit NaN. 1e15 leaves room for any n_fft while catching corrupt samples (3e38).
MAX_ABS_EMG = 1e15
# The recording condition of the emg2qwerty release; others (e.g. typing in the air) are not it.
CONDITION = "on_keyboard"
_warned: set[tuple[str, str]] = set()  # (file, what) already warned about in this process


def warn_once(path, what: str, message: str) -> None:
    """Warns ``message`` once per file and kind: readers open a file once per thread and epoch."""
    key = (str(path), what)
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, stacklevel=3)


def _attr_str(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _attr_str(value.item())
    return str(value)


def _parse_keystrokes(path, raw) -> list[dict]:
    try:
        keystrokes = json.loads(_attr_str(raw))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SessionFileError(path, f"attribute 'keystrokes' is not valid JSON ({e})") from None
    if not isinstance(keystrokes, list):
        raise SessionFileError(path, "attribute 'keystrokes' must be a JSON list")
    number = (int, float)
    for i, k in enumerate(keystrokes):
        # Spelled out, not a generator over the fields: a session has thousands of keystrokes.
        ok = isinstance(k, dict) and isinstance(k.get("key"), str)
        if ok:
            start, end = k.get("start"), k.get("end")
            ok = (isinstance(start, number) and isinstance(end, number)
                  and not isinstance(start, bool) and not isinstance(end, bool))
        if not ok:
            raise SessionFileError(
                path,
                f"keystroke {i} in attribute 'keystrokes' must be an object with a string 'key' "
                f"and numeric 'start' and 'end', got {json.dumps(k)[:80]}",
            )
    return keystrokes


def _parse_prompts(path, raw) -> list[dict]:
    try:
        prompts = json.loads(_attr_str(raw))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SessionFileError(path, f"attribute 'prompts' is not valid JSON ({e})") from None
    if not isinstance(prompts, list) or not all(isinstance(p, dict) for p in prompts):
        raise SessionFileError(path, "attribute 'prompts' must be a JSON list of objects")
    return prompts


class EMGSession(SessionBase):
    """One emg2qwerty session file, opened read-only (an HDF5 file; a BIDS session's ``.bdf``,
    ``emg`` or ``ses-`` folder opens as ``emgtf.data.bids.BIDSSession``, same interface).

    Use as a context manager (``with EMGSession(path) as s: ...``) or call ``close``. Samples
    are read from disk on demand (``slice``, ``read``); only the timestamps are kept in
    memory once asked for.
    """

    def __new__(cls, path: str | os.PathLike):
        # A data root may hold the BIDS release instead: a session's .bdf or its folder opens as a
        # BIDSSession, which has this class's interface, so every reader takes either form.
        if cls is EMGSession:
            from emgtf.data import bids

            if bids.is_bids_session(path):
                return bids.BIDSSession(path)
        return super().__new__(cls)

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise SessionFileError(self.path, "no such file")
        if self.path.is_dir():
            raise SessionFileError(self.path, "is a directory, not a session file")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            reason = "truncated or not an HDF5 file"
            if not h5py.is_hdf5(self.path):
                reason = "not an HDF5 file (or truncated)"
            raise SessionFileError(self.path, f"{reason} ({str(e).splitlines()[0]})") from None
        try:
            self._open()
        except BaseException:
            self._file.close()
            raise

    def _open(self) -> None:
        if GROUP not in self._file:
            raise SessionFileError(self.path, f"no '{GROUP}' group")
        group = self._file[GROUP]
        if TIMESERIES not in group or not isinstance(group[TIMESERIES], h5py.Dataset):
            raise SessionFileError(self.path, f"no '{GROUP}/{TIMESERIES}' dataset")
        ds = group[TIMESERIES]
        names = ds.dtype.names or ()
        for field in FIELDS:
            if field not in names:
                raise SessionFileError(
                    self.path, f"'{GROUP}/{TIMESERIES}' has no '{field}' field (fields: {list(names)})"
                )
        for field in ("emg_left", "emg_right"):
            shape = ds.dtype.fields[field][0].shape
            if shape != (NUM_CHANNELS,):
                raise SessionFileError(
                    self.path, f"field '{field}' has shape {shape}, expected ({NUM_CHANNELS},)"
                )
        if ds.ndim != 1:
            raise SessionFileError(self.path, f"'{GROUP}/{TIMESERIES}' must be 1-D, has shape {ds.shape}")
        for field in FIELDS:
            kind = ds.dtype.fields[field][0].base.kind
            if kind not in ("f", "i", "u"):
                raise SessionFileError(
                    self.path, f"field '{field}' must be numeric, has type {ds.dtype.fields[field][0]}"
                )
        self._ds = ds
        attrs = group.attrs
        for key in ("keystrokes", "prompts"):
            if key not in attrs:
                raise SessionFileError(self.path, f"group '{GROUP}' has no '{key}' attribute")
        self.keystrokes: list[dict] = _parse_keystrokes(self.path, attrs["keystrokes"])
        self.prompts: list[dict] = _parse_prompts(self.path, attrs["prompts"])
        self.session_name: str = _attr_str(attrs.get("session_name", self.path.stem))
        self.user: str = _attr_str(attrs.get("user", ""))
        self.condition: str = _attr_str(attrs.get("condition", ""))
        duration = attrs.get("duration_mins")
        try:
            self.duration_mins: float = float(duration) if duration is not None else math.nan
        except (TypeError, ValueError):
            raise SessionFileError(
                self.path, f"attribute 'duration_mins' must be a number, got {_attr_str(duration)[:40]!r}"
            ) from None
        if self.condition and self.condition != CONDITION:
            warn_once(self.path, "condition", f"{self.path}: condition is {self.condition!r}, not "
                      f"{CONDITION!r}; models trained on the emg2qwerty release may not transfer")
        self._timestamps: np.ndarray | None = None

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()

    def __repr__(self) -> str:
        return f"EMGSession({str(self.path)!r}, session_name={self.session_name!r}, samples={len(self)})"

    # --- samples ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._ds.shape[0])

    @property
    def timestamps(self) -> np.ndarray:
        """float64 unix seconds of every sample; checked to be finite and monotonic on first access."""
        if self._timestamps is None:
            t = self._ds.fields("time")[:]
            check_times(self.path, t)
            self._timestamps = t
        return self._timestamps

    @property
    def row_dtype(self) -> np.dtype:
        """The compound dtype of the file's timeseries rows."""
        return self._ds.dtype

    def time_range(self) -> tuple[float, float] | None:
        """(time of the first sample, time of the last), checked finite and in order; None if the
        session has no samples. Reads those two timestamps only (unless all are in memory)."""
        n = len(self)
        if n == 0:
            return None
        t = self._timestamps
        if t is None:
            column = self._ds.fields("time")
            t = np.concatenate([column[:1], column[n - 1 :]]) if n > 1 else column[:1]
            check_times(self.path, t, [0, n - 1][: len(t)])
        return float(t[0]), float(t[-1])

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """EMG samples ``[start, stop)`` by index as float32 of shape (n, 2, 16), left band first."""
        rows = self._ds[start:stop]
        return np.stack([rows["emg_left"], rows["emg_right"]], axis=1).astype(np.float32, copy=False)

    def slice(self, start_t: float = -math.inf, end_t: float = math.inf) -> np.ndarray:
        """The raw compound samples with ``start_t <= time <= end_t`` (a structured array with the
        file's fields), read from disk."""
        i0, i1 = self.index_range(start_t, end_t)
        return self._ds[i0:i1]



def check_times(path, t: np.ndarray, samples=0) -> None:
    """Raises a one-line ``SessionFileError`` unless the timestamps ``t`` are finite and
    non-decreasing. ``samples``: the sample index of ``t[0]`` (consecutive samples), or the sorted
    sample indices of all of ``t`` (timestamps read here and there)."""
    t = np.asarray(t)
    if t.size == 0:
        return
    ordered = t[1:] >= t[:-1]  # false at NaN too
    if np.isfinite(t[0]) and np.isfinite(t[-1]) and ordered.all():
        return  # ordered between two finite ends: all finite
    index = np.arange(t.size) + samples if np.isscalar(samples) else np.asarray(samples)
    bad = np.flatnonzero(~np.isfinite(t))
    if bad.size:
        raise SessionFileError(path, f"timestamp {t[bad[0]]} at sample {int(index[bad[0]])} is not finite")
    k = int(np.flatnonzero(~ordered)[0])
    before, at = int(index[k]), int(index[k + 1])
    where = (f"sample {at} goes back in time" if at == before + 1 else
             f"the time goes back between samples {before} and {at}")
    raise SessionFileError(path, f"timestamps are not monotonic ({where})")


def check_scored_sessions(files, part: str) -> None:
    """Refuses a ``part`` (val, test) session with no keystroke inside its recording: its CER
    would divide by zero target characters, and its empty target would count as perfect."""
    for path in files:
        with EMGSession(path) as session:
            inside, outside = session.keys_outside()
        if inside == 0:
            raise SessionFileError(
                path, f"none of its {outside} keystrokes lies inside the recording's time range, so "
                f"it cannot be a {part} session (scored against its keys)",
            )


def write_session(
    path: str | os.PathLike,
    *,
    time: np.ndarray,
    emg_left: np.ndarray,
    emg_right: np.ndarray,
    keystrokes: Sequence[dict],
    prompts: Sequence[dict],
    session_name: str,
    user: str,
    condition: str = "on_keyboard",
    duration_mins: float | None = None,
    field_order: Sequence[str] = REAL_FIELD_ORDER,
    overwrite: bool = False,
) -> Path:
    """Writes a session file in the emg2qwerty format.

    ``time`` is float64 (T,), ``emg_left``/``emg_right`` are float32 (T, 16). The same inputs give
    the same bytes (no HDF5 modification times are stored). An existing file is an error unless
    ``overwrite``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise SessionFileError(path, "already exists (pass overwrite=True to replace it)")
    if sorted(field_order) != sorted(FIELDS):
        raise ValueError(f"field_order must be a permutation of {FIELDS}, got {tuple(field_order)}")
    time = np.asarray(time, dtype=np.float64)
    emg = {"emg_left": np.asarray(emg_left, np.float32), "emg_right": np.asarray(emg_right, np.float32)}
    for name, x in emg.items():
        if x.shape != (time.shape[0], NUM_CHANNELS):
            raise ValueError(f"{name} must have shape ({time.shape[0]}, {NUM_CHANNELS}), got {x.shape}")
    dtype = np.dtype(
        [(f, np.float64) if f == "time" else (f, np.float32, (NUM_CHANNELS,)) for f in field_order]
    )
    table = np.empty(time.shape[0], dtype=dtype)
    table["time"] = time
    table["emg_left"] = emg["emg_left"]
    table["emg_right"] = emg["emg_right"]
    if duration_mins is None:
        duration_mins = float(time[-1] - time[0]) / 60.0 if time.size else 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", track_order=False) as f:
        group = f.create_group(GROUP)
        group.create_dataset(TIMESERIES, data=table, track_times=False)
        group.attrs["session_name"] = session_name
        group.attrs["user"] = user
        group.attrs["condition"] = condition
        group.attrs["duration_mins"] = float(duration_mins)
        group.attrs["keystrokes"] = json.dumps(list(keystrokes))
        group.attrs["prompts"] = json.dumps(list(prompts))
    return path


SUMMARY_KEYS = (
    "session_name", "user", "condition", "duration_mins", "num_samples", "num_keystrokes",
    "num_prompts", "text",
)


def summarize(path) -> dict:
    """The summary of one session file, with exactly the keys of ``SUMMARY_KEYS`` (what ``python -m emgtf.inspect`` shows)."""
    with EMGSession(path) as s:
        s.timestamps  # validates monotonic time, so a corrupt file is reported here
        return {
            "session_name": s.session_name,
            "user": s.user,
            "condition": s.condition,
            "duration_mins": round(s.duration_mins, 3),
            "num_samples": len(s),
            "num_keystrokes": len(s.keystrokes),
            "num_prompts": len(s.prompts),
            "text": s.ground_truth().text,
        }
