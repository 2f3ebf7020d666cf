"""The tf.data input pipeline: windows (or whole sessions) of session files as padded dict batches.

Windows. A session of N samples gives ``(N - window_length) // stride + 1`` windows; window i
covers the samples ``[o, o + window_length)`` with ``o = i * stride`` (plus, with ``jitter``, a
uniform draw in ``[0, min(stride, N - window_length - i * stride + 1))``, so that a window never
runs past the end). Its labels are the keys pressed between the times of its first and its last
sample, both included: ``EMGSession.ground_truth(time[o], time[o + window_length - 1])``. The model
sees the window with its context: samples ``[o - left, o + window_length + right)`` clamped to
``[0, N)``; the labels do not depend on the context. With ``window_length=None`` each whole session
is one element, labelled with the keys pressed between its first and last sample.

Batches are dicts:
  "emg" float32 (B, T, 2, 16), left band first, zero after each element's length; in windowed mode
      T is always left + window_length + right (static), in session mode the longest in the batch;
  "emg_lengths" int32 (B,); "labels" int32 (B, L) padded with -1; "label_lengths" int32 (B,);
  "session" string (B,) the session name; "start" int64 (B,) the sample index in the session of
      ``emg[b, 0]`` (the first context sample).

How it reads. The window table (session, start, jitter range) and each session's keystrokes are
computed once, when the dataset is built, from the file's size and keystrokes; neither EMG nor
timestamps are read then but the first and the last sample's time (cached, see
``emgtf.data.index_cache``). A window is labelled from the times of its own first and last
sample when its rows are read, as the reference does. The timestamps are checked to be finite and
in order where they are read: the two ends of each session when the dataset is built, every
window's when it is read (a file whose clock goes back fails there, naming the sample);
``python -m emgtf.inspect`` checks every timestamp of a file up front.

Each batch of windows is read in one ``tf.numpy_function`` call with h5py, only each window's rows, through one open file per session and reader thread, straight into the
batch buffer; TensorFlow ops then pick the EMG fields out of the rows, check they are finite and
below MAX_ABS_EMG (larger values overflow the spectrogram) and
augment, off the Python lock. Random draws (jitter, shuffle, augmentation) come from seeded tf.data
random streams that change every epoch (every new iterator), so the same seed gives the same
batches, epoch by epoch.

Errors while reading (non-finite EMG, unreadable rows) are raised as ``SessionFileError``
naming the file and sample. tf.data re-raises them as ``tf.errors.OpError`` whose message contains
that text; wrap the loop in ``data_errors`` to get the one-line ``EmgtfError`` back.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import re
import threading
import time
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import tensorflow as tf

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.charset import PAD
from emgtf.data import bids, index_cache
from emgtf.data.augment import Augmentations, as_augmentations, augment_batch
from emgtf.data.session import GROUP, MAX_ABS_EMG, TIMESERIES, EMGSession, check_times, warn_once
from emgtf.errors import EmgtfError, SessionFileError

BANDS = ("left", "right")


@dataclass(frozen=True)
class _SessionIndex:
    """What a session contributes to the window table: its size and its keystrokes."""

    path: Path
    name: str
    num_samples: int
    dtype: np.dtype  # of the timeseries rows
    labels: np.ndarray  # int32, the charset labels of the pressed keys, in press order
    presses: np.ndarray  # float64, their press times (sorted)

    def window_labels(self, first_time: float, last_time: float) -> np.ndarray:
        """Labels of the keys pressed between the times of a window's first and last sample,
        both included."""
        lo = np.searchsorted(self.presses, first_time, side="left")
        hi = np.searchsorted(self.presses, last_time, side="right")
        return self.labels[lo : max(lo, hi)]


def _index_session(path: Path) -> _SessionIndex:
    cached = index_cache.load(path)
    if cached is not None:
        meta = cached["meta"]
        name, num_samples, outside = meta["name"], meta["num_samples"], meta["outside"]
        dtype = np.lib.format.descr_to_dtype(_descr(meta["dtype"]))
        labels, presses = cached["labels"], cached["presses"]
    else:
        # No timestamp is read but the first and the last (for the keys outside the recording):
        # a window is labelled from its own first and last sample's time when it is read.
        with EMGSession(path) as session:  # validates the file
            truth = session.ground_truth()
            name, num_samples, dtype = session.session_name, len(session), session.row_dtype
            outside = session.keys_outside()[1]
        labels, presses = truth.labels.astype(np.int32), truth.timestamps.astype(np.float64)
        meta = {"name": name, "num_samples": int(num_samples), "outside": int(outside),
                "dtype": np.lib.format.dtype_to_descr(dtype)}
        index_cache.store(path, meta, {"labels": labels, "presses": presses})
    if outside:
        # Keys pressed before the first or after the last sample are in no window: say so, since
        # a wrong clock or a cut recording would otherwise silently drop labels.
        warn_once(path, "keys outside", f"{path}: session {name}: {outside} keystroke(s) lie outside "
                  "the recorded time range and are left out")
    return _SessionIndex(path=path, name=name, num_samples=num_samples, dtype=dtype,
                         labels=labels, presses=presses)


def _descr(value):
    """A dtype description read back from JSON: lists where numpy wrote tuples."""
    if not isinstance(value, list):
        return value
    fields = []
    for name, fmt, *shape in value:
        fields.append((name, _descr(fmt), *(tuple(s) for s in shape)))
    return fields


def _aligned_zeros(shape, dtype=np.float32, align: int = 64) -> np.ndarray:
    """Zeros whose buffer starts on an ``align``-byte boundary: tf.numpy_function hands such an
    array to TensorFlow as it is, an unaligned one costs a copy of the whole batch."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.zeros(size + align, np.uint8)
    offset = (-raw.ctypes.data) % align
    return raw[offset : offset + size].view(dtype).reshape(shape)


@dataclass(frozen=True)
class _Layout:
    """Where the EMG lies in a row of the buffer the reader fills, in float32 words."""

    width: int  # words per row
    left: int  # first word of emg_left
    right: int  # first word of emg_right
    dtype: np.dtype | None  # the files' compound dtype when rows go from disk to buffer unconverted


_COPIED = _Layout(width=2 * NUM_CHANNELS, left=0, right=NUM_CHANNELS, dtype=None)


def _layout(dtypes: list[np.dtype]) -> _Layout:
    """Rows read from HDF5 straight into the batch buffer, unconverted, is the fast path (a field
    copy in numpy costs more than the read): it needs one compound type for all the files, with
    4-byte aligned float32 EMG fields. Real files share one layout; otherwise the reader copies."""
    if len(set(dtypes)) != 1:
        return _COPIED
    dtype = dtypes[0]
    fields = [dtype.fields[f] for f in ("emg_left", "emg_right")]
    if dtype.itemsize % 4 or any(offset % 4 or sub.base != np.float32 for sub, offset in fields):
        return _COPIED
    return _Layout(width=dtype.itemsize // 4, left=fields[0][1] // 4, right=fields[1][1] // 4, dtype=dtype)


_READERS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _let_readers_finish(timeout: float = 10.0, quiet: float = 0.2) -> None:
    """Waits (at most ``timeout`` s) until no reader has run for ``quiet`` s.

    A tf.data iterator still alive when Python shuts down (a global, a frame kept by a traceback)
    is destroyed after the interpreter stops handing out the GIL; if a numpy_function call is then
    in flight, its thread waits for the GIL forever and the process hangs at exit (seen with
    TF 2.21 and any numpy_function pipeline). Once the prefetch buffers are full no call is in
    flight, and the iterator is destroyed cleanly.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(reader.idle_for() >= quiet for reader in list(_READERS)):
            return
        time.sleep(quiet / 4)


class _Reader:
    """Reads batches of windows with h5py: one open file per session and reader thread, only the
    rows of each window."""

    def __init__(self, sessions: list[_SessionIndex], left: int, right: int, fixed_steps: int | None,
                 max_open_files: int = 64):
        self.sessions = sessions
        self.max_open_files = max(1, int(max_open_files))
        # BIDS rows are decoded from the BDF, never read straight into the buffer.
        hdf5 = not any(bids.is_bids_session(s.path) for s in sessions)
        self.layout = _layout([s.dtype for s in sessions]) if hdf5 else _COPIED
        self.left, self.right = left, right
        self.fixed_steps = fixed_steps
        self._local = threading.local()
        self._lock = threading.Lock()
        self._running = 0
        self._last_call = -float("inf")
        _READERS.add(self)

    def idle_for(self) -> float:
        """Seconds since the last call ended; 0 while one runs."""
        with self._lock:
            return 0.0 if self._running else time.monotonic() - self._last_call

    def _timeseries(self, i: int) -> h5py.Dataset:
        # Each reader thread keeps its most recently used files open, at most max_open_files:
        # 1,135 sessions times AUTOTUNE threads would otherwise exhaust the process's file limit.
        cache = getattr(self._local, "open", None)
        if cache is None:
            cache = self._local.open = collections.OrderedDict()
        if i in cache:
            cache.move_to_end(i)
            return cache[i][1]
        path = self.sessions[i].path
        try:
            if bids.is_bids_session(path):
                handle = bids.BIDSSession(path, keys=False)  # rows sliced like a timeseries dataset
                cache[i] = (handle, handle.timeseries)
            else:
                handle = h5py.File(path, "r")
                cache[i] = (handle, handle[GROUP][TIMESERIES])
        except (OSError, KeyError) as e:  # changed since the dataset was built
            raise SessionFileError(path, f"cannot open for reading ({str(e).splitlines()[0]})") from None
        while len(cache) > self.max_open_files:
            _, (old, _) = cache.popitem(last=False)
            old.close()
        return cache[i][1]

    def __call__(self, session_ids, offsets, lengths):
        """Rows (B, T, width) float32 holding the windows' EMG, their lengths, padded labels,
        label lengths, the first sample read and the labelled part (start, end) in the rows."""
        with self._lock:
            self._running += 1
        try:
            return self._read(session_ids, offsets, lengths)
        finally:
            with self._lock:
                self._running -= 1
                self._last_call = time.monotonic()

    def _read(self, session_ids, offsets, lengths):
        windows = list(zip(session_ids.tolist(), offsets.tolist(), lengths.tolist()))
        ranges = [
            (max(offset - self.left, 0), min(offset + length + self.right, self.sessions[i].num_samples))
            for i, offset, length in windows
        ]
        steps = self.fixed_steps or max(stop - start for start, stop in ranges)
        batch, layout = len(windows), self.layout
        rows = _aligned_zeros((batch, steps, layout.width))
        emg_lengths = np.zeros(batch, np.int32)
        starts = np.zeros(batch, np.int64)
        core = np.zeros((batch, 2), np.int32)
        labels = []
        for b, ((i, offset, length), (start, stop)) in enumerate(zip(windows, ranges)):
            timeseries = self._timeseries(i)
            n = stop - start
            try:
                if layout.dtype is not None:
                    timeseries.read_direct(rows[b, :n].view(layout.dtype)[:, 0], np.s_[start:stop])
                else:
                    table = timeseries[start:stop]
                    rows[b, :n, :NUM_CHANNELS] = table["emg_left"]
                    rows[b, :n, NUM_CHANNELS:] = table["emg_right"]
            except OSError as e:
                raise SessionFileError(
                    self.sessions[i].path, f"cannot read samples {start}..{stop} ({str(e).splitlines()[0]})"
                ) from None
            # The rows hold the samples' times: the window is labelled from them, and they are
            # checked here (the index read only the first and the last of the session).
            times = table["time"] if layout.dtype is None else rows[b, :n].view(layout.dtype)[:, 0]["time"]
            check_times(self.sessions[i].path, times, start)
            emg_lengths[b] = n
            starts[b] = start
            core[b] = (offset - start, offset - start + length)
            labels.append(self.sessions[i].window_labels(times[offset - start], times[offset - start + length - 1]))
        label_lengths = np.asarray([len(x) for x in labels], np.int32)
        padded = np.full((batch, max(label_lengths)), PAD, np.int32)
        for b, x in enumerate(labels):
            padded[b, : len(x)] = x
        return rows, emg_lengths, padded, label_lengths, starts, core

    def raise_non_finite(self, emg, emg_lengths, session_ids, starts):
        """Raises the error naming the first non-finite EMG value of a batch (only called when
        there is one)."""
        for b in range(emg.shape[0]):
            window = emg[b, : emg_lengths[b]]
            bad = np.argwhere(~(np.abs(window) <= MAX_ABS_EMG))  # NaN compares false
            if bad.size:
                row, band, channel = (int(v) for v in bad[0])
                value = window[row, band, channel]
                why = ("the EMG must be finite" if not np.isfinite(value) else
                       f"above {MAX_ABS_EMG:.0e}, its spectrogram power would overflow float32")
                raise SessionFileError(
                    self.sessions[int(session_ids[b])].path,
                    f"EMG value {value:.3g} at sample {int(starts[b]) + row} "
                    f"({BANDS[band]} band, channel {channel}); {why}",
                )
        return emg

    def emg(self, rows, emg_lengths, session_ids, starts):
        """(B, T, 2, 16) EMG from the rows, checked to be finite (TensorFlow ops)."""
        layout = self.layout
        if layout.dtype is None:
            emg = rows
        else:
            emg = tf.concat(
                [rows[..., layout.left : layout.left + NUM_CHANNELS],
                 rows[..., layout.right : layout.right + NUM_CHANNELS]],
                axis=-1,
            )
        emg = tf.reshape(emg, (tf.shape(rows)[0], tf.shape(rows)[1], NUM_BANDS, NUM_CHANNELS))
        emg = tf.cond(
            tf.reduce_all(tf.abs(emg) <= MAX_ABS_EMG),  # false for NaN and infinity too
            lambda: emg,
            lambda: tf.numpy_function(self.raise_non_finite, [emg, emg_lengths, session_ids, starts], tf.float32),
        )
        emg.set_shape((None, self.fixed_steps, NUM_BANDS, NUM_CHANNELS))
        return emg


def _error_names() -> list[str]:
    names, todo = [], [EmgtfError]
    while todo:
        cls = todo.pop()
        names.append(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


@contextlib.contextmanager
def data_errors():
    """Turns an ``EmgtfError`` raised while tf.data reads a window (it reaches the caller as a
    ``tf.errors.OpError`` carrying its text) back into a one-line ``EmgtfError``::

        with data_errors():
            for batch in dataset: ...
    """
    try:
        yield
    except tf.errors.OpError as e:
        match = re.search(rf"\b(?:{'|'.join(_error_names())}): ([^\n]+)", e.message or "")
        if match is None:
            raise
        raise EmgtfError(match.group(1).strip()) from None


def _positive_int(name: str, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise EmgtfError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _padding(value) -> tuple[int, int]:
    message = f"padding must be two non-negative integers (left, right), got {value!r}"
    try:
        left, right = value
    except (TypeError, ValueError):
        raise EmgtfError(message) from None
    for v in (left, right):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 0:
            raise EmgtfError(message)
    return int(left), int(right)


def _window_table(sessions: list[_SessionIndex], window_length, stride) -> dict[str, np.ndarray]:
    """Rows (session, offset, jitter range, length) of every window, in session order."""
    ids, offsets, spans, lengths = [], [], [], []
    for i, s in enumerate(sessions):
        if window_length is None:
            if s.num_samples == 0:
                raise SessionFileError(s.path, "has no samples")
            length, base, span = s.num_samples, np.zeros(1, np.int64), np.ones(1, np.int64)
        else:
            if s.num_samples < window_length:
                warnings.warn(
                    f"{s.path}: {s.num_samples} samples, fewer than window_length {window_length}; "
                    "this session gives no windows",
                    stacklevel=3,
                )
                continue
            length = window_length
            base = np.arange((s.num_samples - window_length) // stride + 1, dtype=np.int64) * stride
            span = np.minimum(stride, s.num_samples - window_length - base + 1)
        ids.append(np.full(len(base), i, np.int32))
        offsets.append(base)
        spans.append(span.astype(np.int64))
        lengths.append(np.full(len(base), length, np.int64))
    if not ids:
        raise EmgtfError(
            f"no session is at least window_length {window_length} samples long ({len(sessions)} "
            f"session(s), the longest has {max(s.num_samples for s in sessions)} samples)"
        )
    return {
        "session": np.concatenate(ids),
        "offset": np.concatenate(offsets),
        "span": np.concatenate(spans),
        "length": np.concatenate(lengths),
    }


def make_dataset(
    sessions: Sequence[str | os.PathLike],
    *,
    window_length: int | None,
    padding: tuple[int, int] = (1800, 200),
    stride: int | None = None,
    jitter: bool = False,
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
    augment: Augmentations | dict | None = None,
    fraction: float = 1.0,
    drop_remainder: bool = False,
    num_parallel_calls: int | None = None,
    max_open_files: int = 64,
    shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """A tf.data.Dataset of padded dict batches of windows of the given session files.

    ``window_length`` samples per window with ``padding`` = (left, right) context samples, clamped
    at the session ends; ``stride`` defaults to the window length; ``jitter`` moves each window's
    start by a fresh random draw inside the stride every epoch. ``window_length=None``: each whole
    session is one element (test mode; ``padding`` does not apply, ``stride`` and ``jitter`` are
    refused). ``shuffle`` mixes all windows of all sessions, again every epoch. ``seed`` makes
    jitter, shuffle, augmentation and ``fraction`` reproducible (None: fresh randomness).
    ``max_open_files``: session files each reader thread keeps open (least recently used closed).
    ``augment``: raw-signal augmentations (``Augmentations`` or a dict of its fields), for
    training only. ``fraction`` in (0, 1]: keep this share of the windows (at least one), a fixed
    random subset drawn with ``seed``. ``num_parallel_calls``: batches prepared at once (default
    AUTOTUNE); batches always come in a deterministic order. ``shard`` = (index, count): this
    pipeline reads only its share of the windows, for one of ``count`` hosts training together:
    every host draws the same subset, jitter and order (the same ``seed``) and takes every
    count-th window of it, so the shares are disjoint and equal in size (up to count - 1 windows
    of an epoch are left out, different ones each epoch when shuffled); augmentation draws
    differ between the shares.

    A session shorter than the window gives no windows and one warning; if no session gives any,
    or the list is empty, it is an ``EmgtfError``. See the module docstring for the windows
    and the batches.
    """
    if isinstance(sessions, (str, os.PathLike)):
        raise EmgtfError(f"sessions must be a list of session files, got the single path {sessions}")
    paths = [Path(p) for p in sessions]
    if not paths:
        raise EmgtfError("no session files given (empty list of sessions)")
    if window_length is not None:
        window_length = _positive_int("window_length", window_length)
    batch_size = _positive_int("batch_size", batch_size)
    if window_length is None:
        if jitter or stride is not None:
            raise EmgtfError("stride and jitter need a window_length (window_length=None reads whole sessions)")
        left = right = 0
    else:
        left, right = _padding(padding)
        stride = _positive_int("stride", window_length if stride is None else stride)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise EmgtfError(f"fraction must be a number in (0, 1], got {fraction!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise EmgtfError(f"seed must be a non-negative integer or None, got {seed!r}")
    augment = as_augmentations(augment)
    if shard is not None:
        index, count = shard
        count = _positive_int("shard count", count)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            raise EmgtfError(f"shard must be (index, count) with 0 <= index < count, got {shard!r}")
        if seed is None:
            raise EmgtfError("shard needs a seed: every host must draw the same order of windows")

    indexed = [_index_session(p) for p in paths]
    table = _window_table(indexed, window_length, stride)

    # Independent streams for the subset, the jitter, the shuffle and the augmentations.
    if seed is None:
        subset_rng, jitter_seed, shuffle_seed, augment_seed = np.random.default_rng(), None, None, None
    else:
        states = np.random.SeedSequence(int(seed)).generate_state(4)
        subset_rng = np.random.default_rng(int(states[0]))
        jitter_seed, shuffle_seed, augment_seed = (int(s) for s in states[1:])
        if shard is not None and shard[0] > 0:
            augment_seed = int(np.random.SeedSequence([int(seed), shard[0]]).generate_state(1)[0])

    total = len(table["session"])
    if fraction < 1:
        keep = np.sort(subset_rng.choice(total, size=max(1, round(total * fraction)), replace=False))
        table = {k: v[keep] for k, v in table.items()}
        total = len(keep)

    rows = tf.data.Dataset.from_tensor_slices((table["session"], table["offset"], table["span"], table["length"]))
    if jitter:
        draws = tf.data.Dataset.random(seed=jitter_seed, rerandomize_each_iteration=True)
        rows = tf.data.Dataset.zip(rows, draws).map(
            lambda row, r: (row[0], row[1] + tf.math.floormod(r, row[2]), row[3])
        )
    else:
        rows = rows.map(lambda s, o, _, n: (s, o, n))
    if shuffle:
        rows = rows.shuffle(total, seed=shuffle_seed, reshuffle_each_iteration=True)
    if shard is not None:
        rows = rows.take(total - total % shard[1]).shard(shard[1], shard[0])
    batches = rows.batch(batch_size, drop_remainder=drop_remainder)

    reader = _Reader(indexed, left, right, None if window_length is None else left + window_length + right,
                     max_open_files=_positive_int("max_open_files", max_open_files))
    names = tf.constant([s.name for s in indexed])
    augment = augment if augment is not None and augment.active else None

    def read(session_ids, offsets, lengths, seed=None):
        raw, emg_lengths, labels, label_lengths, starts, core = tf.numpy_function(
            reader,
            [session_ids, offsets, lengths],
            [tf.float32, tf.int32, tf.int32, tf.int32, tf.int64, tf.int32],
            stateful=False,
        )
        for t in (emg_lengths, label_lengths, starts):
            t.set_shape((None,))
        labels.set_shape((None, None))
        core.set_shape((None, 2))
        batch = {
            "emg": reader.emg(raw, emg_lengths, session_ids, starts),
            "emg_lengths": emg_lengths,
            "labels": labels,
            "label_lengths": label_lengths,
            "session": tf.gather(names, session_ids),
            "start": starts,
        }
        if seed is not None:
            batch = augment_batch({**batch, "_core": core}, augment, seed)
            del batch["_core"]
        return batch

    parallel = num_parallel_calls or tf.data.AUTOTUNE
    if augment is not None:
        draws = tf.data.Dataset.random(seed=augment_seed, rerandomize_each_iteration=True)
        batches = tf.data.Dataset.zip(batches, draws).map(
            lambda row, r: read(*row, seed=r), num_parallel_calls=parallel, deterministic=True
        )
    else:
        batches = batches.map(read, num_parallel_calls=parallel, deterministic=True)
    return batches.prefetch(tf.data.AUTOTUNE)
