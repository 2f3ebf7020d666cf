"""Progress of downloads: live bars (rich) on a terminal, plain lines otherwise.

The fetching code reports to a ``Progress``; the base class reports nothing (library use),
``LiveProgress`` draws rich's bars (bytes, rate, time left), ``LineProgress`` writes a
line per file now and then, for logs and pipes. Thread-safe: files are fetched several at once.
"""

from __future__ import annotations

import sys
import threading
import time


def human_bytes(n: float | None) -> str:
    """``1.2 GB``-style sizes (decimal units, as hosts and disks state them)."""
    if n is None:
        return "? B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def human_seconds(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """Receives what a download does; this base class shows nothing."""

    def start(self, name: str, total: int | None, done: int = 0):
        """A transfer of ``name`` begins (``done`` bytes already on disk); returns its handle."""
        return name

    def advance(self, task, nbytes: int) -> None:
        pass

    def finish(self, task, message: str) -> None:
        """The transfer ended (``message``: what became of it)."""

    def log(self, message: str) -> None:
        """One line about the downloads (a retry, a skipped file)."""

    def close(self) -> None:
        pass


class LineProgress(Progress):
    """A line per file at its start, every ``interval`` seconds, and at its end."""

    def __init__(self, stream=None, interval: float = 10.0):
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self._lock = threading.Lock()
        self._tasks: dict[int, dict] = {}
        self._next = 0

    def _write(self, line: str) -> None:
        with self._lock:
            print(line, file=self.stream, flush=True)

    def start(self, name, total, done=0):
        with self._lock:
            handle = self._next
            self._next += 1
            now = time.monotonic()
            self._tasks[handle] = {"name": name, "total": total, "done": done, "start": now,
                                   "start_done": done, "shown": now}
        resumed = f", resuming at {human_bytes(done)}" if done else ""
        self._write(f"{name}: fetching {human_bytes(total)}{resumed}")
        return handle

    def _status(self, t: dict) -> str:
        elapsed = max(time.monotonic() - t["start"], 1e-6)
        rate = (t["done"] - t["start_done"]) / elapsed
        text = f"{t['name']}: {human_bytes(t['done'])}"
        if t["total"]:
            text += f" of {human_bytes(t['total'])} ({100 * t['done'] / t['total']:.0f} %)"
        text += f", {human_bytes(rate)}/s"
        if t["total"] and rate > 0:
            text += f", {human_seconds((t['total'] - t['done']) / rate)} left"
        return text

    def advance(self, task, nbytes):
        with self._lock:
            t = self._tasks[task]
            t["done"] += nbytes
            now = time.monotonic()
            due = now - t["shown"] >= self.interval
            if due:
                t["shown"] = now
        if due:
            self._write(self._status(t))

    def finish(self, task, message):
        with self._lock:
            t = self._tasks.pop(task)
        self._write(f"{t['name']}: {message}")

    def log(self, message):
        self._write(message)


class LiveProgress(Progress):
    """rich's live bars: one per file being fetched, with bytes, rate and time left."""

    def __init__(self, console=None):
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress as RichProgress, TextColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)

        self._console = console or Console(stderr=True)
        self._bars = RichProgress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=self._console, transient=False,
        )
        self._bars.start()

    def start(self, name, total, done=0):
        return self._bars.add_task(name, total=total, completed=done)

    def advance(self, task, nbytes):
        self._bars.advance(task, nbytes)

    def finish(self, task, message):
        name = next(t.description for t in self._bars.tasks if t.id == task)
        self._bars.remove_task(task)
        self._bars.console.print(f"{name}: {message}", highlight=False)

    def log(self, message):
        self._bars.console.print(message, highlight=False)

    def close(self):
        self._bars.stop()


def progress_for(stream=None) -> Progress:
    """Live bars when ``stream`` (default stderr) is a terminal, else plain lines."""
    stream = stream if stream is not None else sys.stderr
    return LiveProgress() if getattr(stream, "isatty", lambda: False)() else LineProgress(stream)
