"""Fetching one published file over HTTP(S), resumably, and verifying it before it takes its name.

The bytes go to ``<name>.part`` beside the target. A dropped connection or a server error is
retried with exponential back-off, each try asking only for the missing bytes (an HTTP range
request); a kill leaves the ``.part``, and the next run resumes it the same way. The digest is
computed while the bytes arrive (over the existing ``.part`` first, on a resume); only a file
whose size and digest match the published ones is renamed to its real name. One that does not is
moved aside to ``<name>.corrupt`` (never left under its real name) and reported with both
digests. A file already present under its real name is verified and skipped.

Errors are one line (``emgtf.errors.EmgtfError``): a 403/404 names the URL, a network failure
that outlasts the retries and a full disk say that the partial file is kept for the next run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from emgtf.errors import EmgtfError
from emgtf.fetch.digests import Hasher, file_digest
from emgtf.fetch.mirrors import redirect
from emgtf.fetch.progress import Progress, human_bytes

# Small reads: the bytes of a read that a dropped connection cuts short are lost to the resume.
CHUNK = 64 << 10
# Room kept free beyond a file's own bytes (filesystem metadata, other writers).
SPARE_BYTES = 64 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@dataclass(frozen=True)
class Target:
    """A file to fetch: where from, where to, and what it must be.

    ``digest_kind`` / ``digest``: the published digest (see ``emgtf.fetch.digests``); ``size``:
    the published size in bytes (None: unknown, the server's word is taken); ``check``: for a
    file without a published digest, a function of the downloaded file that returns what is wrong
    with it (None: nothing); ``label``: the name shown in progress and errors.
    """

    url: str
    path: Path
    digest_kind: str | None = None
    digest: str | None = None
    size: int | None = None
    label: str = ""
    check: Callable[[Path], str | None] | None = None

    @property
    def name(self) -> str:
        return self.label or self.path.name


class _Retry(Exception):
    """A failure worth another try (a server error, a short or dropped response)."""


def part_path(path: Path) -> Path:
    """Where the bytes of ``path`` gather until they are verified."""
    return path.with_name(path.name + ".part")


def _aside(path: Path) -> Path:
    """A free name beside ``path`` for a file that failed verification (never overwrites)."""
    candidate = path.with_name(path.name + ".corrupt")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.corrupt.{n}")
        n += 1
    return candidate


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """One line if ``folder``'s filesystem has less than ``needed`` bytes (plus a margin) free."""
    folder = Path(folder)
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if needed > 0 and free < needed + SPARE_BYTES:
        raise EmgtfError(f"{folder}: {human_bytes(free)} free, {what} needs {human_bytes(needed)}; "
                         "free some space or choose another out=")


def _no_room(part: Path, error: OSError) -> EmgtfError:
    kept = part.stat().st_size if part.exists() else 0
    if error.errno in _NO_ROOM:
        return EmgtfError(f"{part}: disk full ({error.strerror}) after {human_bytes(kept)}; the partial "
                          "file is kept: free some space and run the command again to resume")
    return EmgtfError(f"{part}: cannot write it ({error.strerror or error})")


def _content_range(response) -> tuple[int | None, int | None]:
    """(first byte, total size) of a 206's Content-Range; (None, total) of a 416's ``*/total``."""
    header = response.headers.get("Content-Range", "")
    match = _CONTENT_RANGE.match(header)
    if match:
        total = match.group(3)
        return int(match.group(1)), None if total == "*" else int(total)
    star = re.match(r"bytes\s+\*/(\d+)", header)
    return None, int(star.group(1)) if star else None


@contextlib.contextmanager
def _exclusive(part: Path):
    """Holds an exclusive lock on ``part`` (created if missing), so that two downloads of one file
    never append to it at once; an empty ``part`` left by a failure is removed."""
    try:
        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise _no_room(part, e) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EmgtfError(f"{part}: another download is writing it; wait for it to finish or stop it") from None
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            if part.stat().st_size == 0:
                part.unlink()
        os.close(fd)


class Fetcher:
    """Fetches ``Target`` files (see the module): ``mirror`` redirects every URL (see
    ``emgtf.fetch.mirrors``); ``retries`` tries after a failure without progress, waiting
    ``backoff`` seconds, doubled each time (up to a minute)."""

    def __init__(self, *, mirror: str | None = None, progress: Progress | None = None, retries: int = 5,
                 backoff: float = 2.0, timeout: float = 60.0):
        self.mirror = mirror
        self.progress = progress or Progress()
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        # Set to stop every transfer of this fetcher at its next chunk (Ctrl-C while a pool runs).
        self.stop = threading.Event()

    def url(self, target: Target) -> str:
        return redirect(target.url, self.mirror)

    def verified(self, target: Target, path: Path | None = None) -> str | None:
        """What is wrong with the file at ``path`` (default: the target's own), or None if it
        is the published file."""
        path = path or target.path
        size = path.stat().st_size
        if target.size is not None and size != target.size:
            return f"{size} bytes, published size {target.size}"
        if target.digest_kind and target.digest:
            got = file_digest(path, target.digest_kind)
            if got != target.digest:
                return f"{target.digest_kind} {got}, published {target.digest}"
        if target.check is not None:
            return target.check(path)
        return None

    def fetch(self, target: Target) -> str:
        """Makes ``target.path`` the verified published file; returns ``"present"`` (it already
        was) or ``"fetched"``."""
        path = target.path
        if path.exists():
            problem = self.verified(target)
            if problem is None:
                self.progress.log(f"{target.name}: present and verified")
                return "present"
            aside = _aside(path)
            os.replace(path, aside)
            self.progress.log(f"{path}: not the published file ({problem}); moved aside to {aside.name}, "
                              "fetching it again")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EmgtfError(f"{path.parent}: cannot create the folder ({e.strerror or e})") from None
        part = part_path(path)
        with _exclusive(part):
            if target.size is not None:
                check_free_space(path.parent, target.size - part.stat().st_size, target.name)
            digest = self._download(target, part)
            self._accept(target, part, digest)
        return "fetched"

    def _download(self, target: Target, part: Path) -> str | None:
        """Completes ``part``; returns its digest (None: no published digest to compare)."""
        url = self.url(target)
        hasher: Hasher | None = None
        task = None
        failures = 0
        outcome = "stopped; the partial file is kept"
        session = requests.Session()
        try:
            while True:
                offset = part.stat().st_size if part.exists() else 0
                headers = {"Range": f"bytes={offset}-"} if offset else {}
                try:
                    with session.get(url, headers=headers, stream=True, timeout=self.timeout) as r:
                        if r.status_code in (401, 403, 404, 410):
                            kept = f"; the partial file {part} is kept" if offset else ""
                            raise EmgtfError(f"{url}: HTTP {r.status_code} {r.reason}{kept}")
                        if r.status_code == 416:
                            _, total = _content_range(r)
                            if total is not None and total == offset:
                                break  # the .part was already whole
                            os.truncate(part, 0)  # longer than the file: not a prefix of it
                            hasher = None
                            raise _Retry(f"HTTP 416 for a partial file of {offset} bytes")
                        if r.status_code >= 500 or r.status_code == 429:
                            raise _Retry(f"HTTP {r.status_code} {r.reason}")
                        if r.status_code == 206:
                            start, total = _content_range(r)
                            if start != offset:
                                raise _Retry(f"asked for bytes from {offset}, got {start}")
                        elif r.status_code == 200:
                            if offset:  # the server ignored the range: start over
                                os.truncate(part, 0)
                                offset, hasher = 0, None
                            length = r.headers.get("Content-Length")
                            total = int(length) if length and length.isdigit() else None
                        else:
                            raise EmgtfError(f"{url}: unexpected HTTP {r.status_code} {r.reason}")
                        if total is None:
                            total = target.size
                        elif target.size is not None and total != target.size:
                            raise EmgtfError(f"{url}: the server has {total} bytes, the published size is "
                                             f"{target.size}; a wrong file or a wrong mirror")
                        if total is not None:
                            check_free_space(part.parent, total - offset, target.name)
                        if hasher is None and target.digest_kind:
                            hasher = Hasher(target.digest_kind, total)
                            if offset:
                                hasher.update_from_file(part, offset)
                        if task is None:
                            task = self.progress.start(target.name, total, offset)
                        with open(part, "ab") as f:
                            for chunk in r.iter_content(CHUNK):
                                try:
                                    f.write(chunk)
                                except OSError as e:
                                    raise _no_room(part, e) from None
                                if hasher is not None:
                                    hasher.update(chunk)
                                self.progress.advance(task, len(chunk))
                                if self.stop.is_set():
                                    raise KeyboardInterrupt
                                failures = 0
                        size = part.stat().st_size
                        if total is not None and size < total:
                            raise _Retry(f"connection closed at {size} of {total} bytes")
                        outcome = f"{human_bytes(size)} downloaded"
                        break
                except (requests.RequestException, _Retry) as e:
                    failures += 1
                    why = str(e).splitlines()[0] if str(e) else type(e).__name__
                    if failures > self.retries:
                        kept = part.stat().st_size if part.exists() else 0
                        left = (f"the partial file {part} is kept ({human_bytes(kept)}): run the command "
                                "again to resume") if kept else "nothing was fetched"
                        raise EmgtfError(f"{url}: network failure after {failures} tries ({why}); {left}") from None
                    wait = min(self.backoff * 2 ** (failures - 1), 60.0)
                    self.progress.log(f"{target.name}: {why}; trying again in {wait:.1f} s "
                                      f"({failures} of {self.retries})")
                    time.sleep(wait)
                except OSError as e:
                    raise _no_room(part, e) from None
        finally:
            session.close()
            if task is not None:
                self.progress.finish(task, outcome)
        if hasher is None:  # nothing was fetched: the .part was already whole
            return file_digest(part, target.digest_kind) if target.digest_kind else None
        return hasher.hexdigest()

    def _accept(self, target: Target, part: Path, digest: str | None) -> None:
        problem = None
        size = part.stat().st_size
        if target.size is not None and size != target.size:
            problem = f"{size} bytes, published size {target.size}"
        elif target.digest and digest != target.digest:
            problem = f"{target.digest_kind} {digest}, published {target.digest}"
        elif target.check is not None:
            problem = target.check(part)
        if problem is not None:
            aside = _aside(target.path)
            os.replace(part, aside)
            raise EmgtfError(f"{target.path}: the download is not the published file ({problem}); "
                             f"moved aside to {aside}")
        os.replace(part, target.path)
