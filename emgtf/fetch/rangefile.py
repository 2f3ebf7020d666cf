"""A remote file read over HTTP range requests, as a seekable binary file object.

Reads come from one streamed response while they are sequential; a seek elsewhere, or a dropped
connection, opens a new response at the position wanted (``Range: bytes=<pos>-``), with
exponential back-off between failed tries. So a reader on top of it (a decompressor, a tar reader)
never sees the network fail unless it fails ``retries`` times in a row without progress.

The last bytes read are kept (``look_behind``): a decompressor that reads ahead and seeks back to
the end of what it used (zran does, after every input buffer) is served from memory instead of
with a new request.
"""

from __future__ import annotations

import io
import time

import requests
import urllib3

from emgtf.errors import EmgtfError
from emgtf.fetch.progress import Progress


class RangeFile(io.RawIOBase):
    def __init__(self, url: str, *, retries: int = 5, backoff: float = 2.0, timeout: float = 60.0,
                 progress: Progress | None = None, task=None, look_behind: int = 4 << 20,
                 size: int | None = None):
        super().__init__()
        self.look_behind = look_behind
        self._tail = bytearray()  # the bytes just before self._tail_end
        self._tail_end = 0
        self.url = url
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.progress = progress or Progress()
        self.task = task
        self.requests = 0
        self._session = requests.Session()
        self._response = None
        self._at = None  # the position the open response reads from next
        self._pos = 0
        self._size = size  # None: learnt from the first response
        # The one-line error (or Ctrl-C) a read raised: a reader in C (zran) replaces it with its own.
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    @property
    def size(self) -> int:
        if self._size is None:
            self._open(self._pos)
        return self._size

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self.size + offset
        return self._pos

    def _close_response(self) -> None:
        if self._response is not None:
            self._response.close()
        self._response, self._at = None, None

    def _open(self, position: int) -> None:
        self._close_response()
        self.requests += 1
        headers = {"Range": f"bytes={position}-"} if position else {}
        r = self._session.get(self.url, headers=headers, stream=True, timeout=self.timeout)
        if r.status_code in (401, 403, 404, 410):
            r.close()
            raise EmgtfError(f"{self.url}: HTTP {r.status_code} {r.reason}")
        if r.status_code == 416:
            r.close()
            self._size = position if self._size is None else self._size
            return
        if r.status_code >= 500 or r.status_code == 429:
            r.close()
            raise requests.ConnectionError(f"HTTP {r.status_code} {r.reason}")
        if r.status_code == 206:
            header = r.headers.get("Content-Range", "")
            try:
                start, total = header.split(" ", 1)[1].split("-", 1)[0], header.rsplit("/", 1)[1]
                start, total = int(start), int(total)
            except (IndexError, ValueError):
                r.close()
                raise requests.ConnectionError(f"bad Content-Range '{header}'") from None
            if start != position:
                r.close()
                raise requests.ConnectionError(f"asked for bytes from {position}, got {start}")
            self._size = total
        elif r.status_code == 200:
            if position:
                r.close()
                raise EmgtfError(f"{self.url}: the server does not answer range requests, so an interrupted "
                                 "download cannot resume")
            self._size = int(r.headers["Content-Length"]) if r.headers.get("Content-Length", "").isdigit() else None
        else:
            r.close()
            raise EmgtfError(f"{self.url}: unexpected HTTP {r.status_code} {r.reason}")
        self._response, self._at = r, position

    def readinto(self, buffer) -> int:
        """Fills ``buffer`` unless the file ends first (zran takes a short read for the end)."""
        try:
            return self._fill(buffer)
        except (EmgtfError, KeyboardInterrupt) as e:
            self.error = e
            raise

    def _fill(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            n = self._read_some(view[filled:])
            if n == 0:
                break
            filled += n
        return filled

    def _read_some(self, buffer) -> int:
        if self._size is not None and self._pos >= self._size:
            return 0
        if self._tail_end - len(self._tail) <= self._pos < self._tail_end:
            start = len(self._tail) - (self._tail_end - self._pos)
            n = min(len(buffer), self._tail_end - self._pos)
            buffer[:n] = self._tail[start:start + n]
            self._pos += n
            return n
        failures = 0
        while True:
            try:
                if self._response is None or self._at != self._pos:
                    self._open(self._pos)
                    if self._response is None:
                        return 0
                n = self._response.raw.readinto(buffer)
                if n == 0 and self._size is not None and self._pos < self._size:
                    raise requests.ConnectionError(f"connection closed at byte {self._pos} of {self._size}")
                if self._tail_end != self._pos:
                    self._tail = bytearray()
                self._tail += memoryview(buffer)[:n]
                del self._tail[: max(0, len(self._tail) - self.look_behind)]
                self._tail_end = self._pos + n
                self._pos += n
                self._at = self._pos
                if n and self.task is not None:
                    self.progress.advance(self.task, n)
                return n
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
                if isinstance(e, EmgtfError):
                    raise
                self._close_response()
                failures += 1
                why = str(e).splitlines()[0] if str(e) else type(e).__name__
                if failures > self.retries:
                    raise EmgtfError(f"{self.url}: network failure after {failures} tries ({why}); run the "
                                     "command again to resume") from None
                wait = min(self.backoff * 2 ** (failures - 1), 60.0)
                self.progress.log(f"{self.url}: {why}; trying again in {wait:.1f} s ({failures} of {self.retries})")
                time.sleep(wait)

    def close(self) -> None:
        self._close_response()
        self._session.close()
        super().close()
