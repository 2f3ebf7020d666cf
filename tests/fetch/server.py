"""A real HTTP server on 127.0.0.1 for the download tests: serves a folder laid out as the real
hosts under a mirror base (``<root>/<host>/<path>``), with range requests, and with faults on
demand: a connection dropped after some bytes, a throttle (to kill a client mid-file)."""

from __future__ import annotations

import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class MirrorServer:
    """``with MirrorServer(root) as server``: ``server.base`` is the mirror URL.

    ``server.requests``: (path, Range header or None) of every GET, in order;
    ``server.drop_after[path]``: byte counts; each GET of ``path`` pops the first and closes the
    connection after sending that many bytes of the body; ``server.delay``: seconds slept per
    ``chunk`` bytes sent; ``server.ignore_range``: answer every GET with the whole file (200).
    """

    chunk = 64 * 1024

    def __init__(self, root):
        self.root = Path(root)
        self.requests: list[tuple[str, str | None]] = []
        self.drop_after: dict[str, list[int]] = {}
        self.delay = 0.0
        self.ignore_range = False
        self.status: dict[str, int] = {}
        self._lock = threading.Lock()

    def file(self, url: str) -> Path:
        """Where the file of a real URL lies under the root."""
        parts = urlsplit(url)
        return self.root / parts.netloc / parts.path.lstrip("/")

    def put(self, url: str, data: bytes) -> Path:
        path = self.file(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def ranges(self, suffix: str) -> list[str | None]:
        """The Range headers of the GETs of paths ending in ``suffix``."""
        return [r for p, r in self.requests if p.endswith(suffix)]

    def __enter__(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = unquote(urlsplit(self.path).path)
                header = self.headers.get("Range")
                with server._lock:
                    server.requests.append((path, header))
                    drops = server.drop_after.get(path)
                    drop = drops.pop(0) if drops else None
                if path in server.status:
                    self.send_error(server.status[path])
                    return
                file = (server.root / path.lstrip("/")).resolve()
                if not file.is_file() or server.root.resolve() not in file.parents:
                    self.send_error(404)
                    return
                data_size = file.stat().st_size
                start, end = 0, data_size - 1
                match = _RANGE.match(header or "")
                if match and not server.ignore_range:
                    start = int(match.group(1))
                    end = int(match.group(2)) if match.group(2) else data_size - 1
                    if start >= data_size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{data_size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    end = min(end, data_size - 1)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{data_size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(end - start + 1))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                sent = 0
                with open(file, "rb") as f:
                    f.seek(start)
                    left = end - start + 1
                    while left > 0:
                        block = f.read(min(server.chunk, left))
                        if drop is not None and sent + len(block) > drop:
                            self.wfile.write(block[: drop - sent])
                            self.wfile.flush()
                            self.connection.shutdown(socket.SHUT_RDWR)
                            self.close_connection = True
                            return
                        try:
                            self.wfile.write(block)
                        except (BrokenPipeError, ConnectionResetError):
                            return
                        sent += len(block)
                        left -= len(block)
                        if server.delay:
                            time.sleep(server.delay)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
