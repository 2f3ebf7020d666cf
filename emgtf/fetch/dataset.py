"""The HDF5 release (one 308 GB ``.tar.gz``), extracted while it downloads.

No copy of the tarball is kept: the compressed bytes come over HTTP range requests
(``emgtf.fetch.rangefile.RangeFile``), are decompressed by ``indexed_gzip`` and read as a tar
stream; each ``<session>.hdf5`` (and ``metadata.csv``) is written to ``<name>.part`` in the data root
and renamed when whole. A dropped connection continues in the same decompressor with a range
request. To survive a kill, the decompressor's seek points (zran: the compressed offset and the
32 KiB of output before it, every ``spacing`` bytes) are exported to
``<out>/.emgtf-download/index.gzidx`` with the tar offset of the next member (``state.json``)
every ``checkpoint_every`` bytes; a rerun imports them and starts at that member, after
re-fetching at most ``spacing`` + ``checkpoint_every`` bytes.

Only some sessions may be kept (users or split files): the others are read through (the archive is
one stream) but not written. At the end every kept session must open with h5py and hold the
emg2qwerty group, and their number must match ``metadata.csv`` (or the selection). The tarball has
no published checksum: the signal is as good as gzip's CRC (checked when the stream ran in one
process) and HDF5's structure make it.
"""

from __future__ import annotations

import csv
import json
import os
import tarfile
from pathlib import Path

from emgtf.errors import EmgtfError, first_line
from emgtf.fetch.catalog import published_files
from emgtf.fetch.mirrors import redirect
from emgtf.fetch.progress import Progress, human_bytes
from emgtf.fetch.transfer import check_free_space

NAME = "dataset/emg2qwerty-data-2021-08.tar.gz"
SESSIONS = 1135
STATE = ".emgtf-download"
SPACING = 64 << 20
CHECKPOINT_EVERY = 4 << 30
_COPY = 1 << 20


def _tarball():
    return published_files()[NAME]


def wanted_sessions(*, users=(), splits=()) -> tuple[set[str] | None, int | None]:
    """(``ses-`` labels to keep, or None for all; how many sessions that is, None: unknown)."""
    if not users and not splits:
        return None, None
    from emgtf.fetch.bids import select_sessions

    sessions = select_sessions(users=users, splits=splits)
    return {s.session for s in sessions}, len(sessions)


def _keep(name: str, wanted: set[str] | None) -> bool:
    if name == "metadata.csv":
        return True
    if not name.endswith(".hdf5"):
        return False
    if wanted is None:
        return True
    fields = name.split("-")
    return len(fields) > 3 and fields[3] in wanted


def dataset_plan(out, *, users=(), splits=(), mirror=None) -> str:
    """What ``download dataset`` would do, in a few lines."""
    tarball = _tarball()
    wanted, count = wanted_sessions(users=users, splits=splits)
    keep = "all 1,135 sessions" if wanted is None else f"{count} sessions"
    estimate = tarball.size if wanted is None else tarball.size * count // SESSIONS
    return (f"{redirect(tarball.url, mirror)}\n"
            f"emgtf.download: would stream {human_bytes(tarball.size)} (the whole tarball: one gzip stream) "
            f"and keep {keep}, about {human_bytes(estimate)} on disk"
            + (f" in {out}" if out is not None else " (out= not given)"))


def _read_state(folder: Path, url: str) -> dict | None:
    path = folder / "state.json"
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except ValueError:
        raise EmgtfError(f"{path}: unreadable; delete {folder} to start the download over") from None
    if state.get("source") != os.path.basename(url) or not (folder / "index.gzidx").is_file():
        raise EmgtfError(f"{path}: from another download; delete {folder} to start over")
    return state


def _write_state(folder: Path, gz, state: dict) -> None:
    from emgtf.files import atomic_write, atomic_write_text

    atomic_write(folder / "index.gzidx", lambda tmp: gz.export_index(str(tmp)))
    atomic_write_text(folder / "state.json", json.dumps(state))


def _check_session(path: Path) -> str | None:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f.get("emg2qwerty")
            if group is None or "timeseries" not in group or len(group["timeseries"]) == 0:
                return "no emg2qwerty/timeseries"
    except OSError as e:
        return f"does not open as HDF5 ({e})"
    return None


def _expected_count(root: Path, count: int | None) -> int:
    if count is not None:
        return count
    metadata = root / "metadata.csv"
    if metadata.is_file():
        with open(metadata, newline="") as f:
            return sum(1 for _ in csv.DictReader(f))
    return SESSIONS


def fetch_dataset(out, *, users=(), splits=(), mirror=None, progress: Progress | None = None,
                  retries: int = 5, backoff: float = 2.0, spacing: int = SPACING,
                  checkpoint_every: int = CHECKPOINT_EVERY) -> str:
    """Streams the tarball into the data root ``out`` (see the module); returns a one-line summary."""
    try:
        import indexed_gzip
    except ImportError:
        raise EmgtfError("download dataset needs indexed_gzip (resumable gzip): pip install 'emgtf[download]'") \
            from None
    from emgtf.fetch.rangefile import RangeFile

    progress = progress or Progress()
    root = Path(out)
    folder = root / STATE
    folder.mkdir(parents=True, exist_ok=True)
    tarball = _tarball()
    url = redirect(tarball.url, mirror)
    wanted, count = wanted_sessions(users=users, splits=splits)
    keep = None if wanted is None else sorted(wanted)
    fresh = {"source": os.path.basename(url), "offset": 0, "done": False, "keep": keep}
    state = _read_state(folder, url) or fresh
    if state.get("keep") != keep:
        # Sessions of the new selection may lie before the saved offset: read the stream again
        # (the files already extracted are kept and skipped).
        progress.log(f"{root}: other sessions chosen than in the earlier run: streaming from the start")
        state = fresh
    if not state["done"]:
        estimate = tarball.size if wanted is None else tarball.size * count // SESSIONS
        present = sum(p.stat().st_size for p in root.glob("*.hdf5"))
        check_free_space(root, estimate - present, "the dataset (its size compressed, an estimate)")
        _stream(root, folder, url, state, wanted, progress, retries, backoff, spacing, checkpoint_every,
                indexed_gzip, RangeFile, tarball.size)
    sessions = sorted(p for p in root.glob("*.hdf5") if wanted is None or _keep(p.name, wanted))
    for path in sessions:
        problem = _check_session(path)
        if problem:
            raise EmgtfError(f"{path}: {problem}; delete it and {folder} to fetch it again")
    expected = _expected_count(root, count)
    if len(sessions) != expected:
        raise EmgtfError(f"{root}: {len(sessions)} session files after the download, expected {expected} "
                         f"(to stream the tarball again, delete {folder})")
    return f"{len(sessions)} sessions in {root}, each opens with h5py ({human_bytes(sum(p.stat().st_size for p in sessions))})"


def _stream(root, folder, url, state, wanted, progress, retries, backoff, spacing, checkpoint_every,
            indexed_gzip, RangeFile, size) -> None:
    # zran reads its input in buffers of readbuf_size and seeks back to the end of what it used;
    # with a buffer smaller than the seek-point spacing it makes no points while reading and
    # re-inflates from the last one (re-fetching it): so a buffer of one spacing, and a
    # look-behind that serves those seeks from memory.
    source = RangeFile(url, retries=retries, backoff=backoff, progress=progress, size=size,
                       look_behind=spacing + (1 << 20))
    gz = indexed_gzip.IndexedGzipFile(fileobj=source, spacing=spacing, readbuf_size=spacing, buffer_size=1 << 20)
    base = state["offset"]
    outcome = "stopped; run the command again to resume"
    try:
        _read_archive(root, folder, state, wanted, progress, checkpoint_every, gz, source, base, url)
        outcome = "streamed"
    finally:
        gz.close()
        source.close()
        if source.task is not None:
            progress.finish(source.task, outcome)


def _read_archive(root, folder, state, wanted, progress, checkpoint_every, gz, source, base, url) -> None:
    try:
        if base:
            gz.import_index(str(folder / "index.gzidx"))
            gz.seek(base)
            progress.log(f"resuming at byte {base:,} of the tar stream (compressed byte {source.tell():,})")
        # Shown from here: the bytes of a resumed run count from where it resumed.
        source.task = progress.start(os.path.basename(url), source.size, source.tell())
        since = 0
        with tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                name = os.path.basename(member.name)
                if member.isfile() and _keep(name, wanted):
                    _extract(tar, member, root / name)
                next_header = base + member.offset_data + (-(-member.size // 512) * 512 if member.isfile() else 0)
                since += member.size
                if since >= checkpoint_every:
                    _write_state(folder, gz, {**state, "offset": next_header})
                    since = 0
        state["done"] = True
        _write_state(folder, gz, state)
    except (EmgtfError, KeyboardInterrupt):
        raise
    except Exception as e:  # zran reports a failed read of its input as its own error
        if source.error is not None:
            raise source.error from None
        if isinstance(e, (tarfile.TarError, EOFError, OSError, ValueError)) or type(e).__name__ == "ZranError":
            raise EmgtfError(f"{url}: the .tar.gz does not decompress (a corrupt byte, or a cut or wrong "
                             f"file: {first_line(e)})") from None
        raise


def _extract(tar, member, path: Path) -> None:
    """Writes one member to ``path`` whole or not at all; one already there with its size is kept."""
    if path.is_file() and path.stat().st_size == member.size:
        return
    part = path.with_name(path.name + ".part")
    source = tar.extractfile(member)
    try:
        with open(part, "wb") as f:
            while True:
                block = source.read(_COPY)
                if not block:
                    break
                try:
                    f.write(block)
                except OSError as e:
                    raise EmgtfError(f"{part}: cannot write it ({e.strerror or e}); free some space and run "
                                     "the command again to resume") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if part.stat().st_size != member.size:
        part.unlink()
        raise EmgtfError(f"{path}: the archive member is cut short")
    os.replace(part, path)
