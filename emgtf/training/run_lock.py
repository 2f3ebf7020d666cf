"""The run-folder lock: one process at a time trains (or searches) in a run folder.

Two fits on the same ``run_dir`` would write over each other's checkpoints and history without
either noticing. So a run holds ``<run_dir>/.emgtf.lock``, created atomically (``O_CREAT |
O_EXCL``: of two processes racing for it exactly one wins) and holding the owner's pid and host.
It is removed when the run ends, also on an error or Ctrl-C. A lock left by a process that died
without removing it (killed, power loss) is stale when its host is this host and its pid is no
longer alive; it is then taken over with a warning. A lock of another host cannot be checked from
here, so it is always respected: delete the file by hand if that run is known to be dead.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from pathlib import Path

from emgtf.checks import is_int
from emgtf.errors import EmgtfError
from emgtf.run_folder import LOCK_FILE


class RunLocked(EmgtfError):
    """Another live process holds the run folder."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def read_holder(path: Path) -> dict:
    """The ``{"pid", "host"}`` of a lock file; ``{}`` if it is unreadable (being written, damaged)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def check_free(folder) -> None:
    """Raises ``RunLocked`` naming the holder if a live process holds ``folder``'s lock; what
    a command checks before it looks at the folder's contents (whose report would be misleading)."""
    path = Path(folder) / LOCK_FILE
    if path.is_file():
        holder = read_holder(path)
        if not RunLock._stale(holder):
            who = f"pid {holder.get('pid')} on host {holder.get('host')}" if holder else "another process"
            raise RunLocked(f"run_dir {folder} is in use by {who} (lock file {path}); wait for that run "
                            "to finish, or delete the lock file if it is not running")


class RunLock:
    """The lock of one run folder, held from ``acquire`` until ``release``.

    Use as ``with RunLock.acquire(folder): ...`` or call ``release`` in a ``finally``.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.held = False

    @classmethod
    def acquire(cls, folder) -> "RunLock":
        """Takes the lock of ``folder`` (created if missing); raises ``RunLocked`` naming the
        holder if a live process has it."""
        lock = cls(folder)
        lock.folder.mkdir(parents=True, exist_ok=True)
        # Two tries: the second after removing a stale lock (if another process removed and took it
        # meanwhile, the second O_EXCL fails and that process is the holder we report).
        for attempt in range(2):
            if lock._create():
                return lock
            holder = read_holder(lock.path)
            if attempt == 0 and lock._stale(holder):
                warnings.warn(
                    f"{lock.path}: taking over the lock of pid {holder.get('pid')} on "
                    f"{holder.get('host')}, which is no longer running",
                    stacklevel=2,
                )
                lock.path.unlink(missing_ok=True)
                continue
            break
        who = (f"pid {holder.get('pid')} on host {holder.get('host')}" if holder
               else "another process (its lock file is being written or is unreadable)")
        raise RunLocked(
            f"run_dir {lock.folder} is in use by {who} (lock file {lock.path}); wait for that run "
            "to finish, or delete the lock file if it is not running"
        )

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as e:
            raise EmgtfError(f"{self.path}: cannot create the run lock ({e.strerror})") from None
        try:
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        finally:
            os.close(fd)
        self.held = True
        return True

    @staticmethod
    def _stale(holder: dict) -> bool:
        pid = holder.get("pid")
        if holder.get("host") != socket.gethostname() or not is_int(pid):
            return False
        return pid != os.getpid() and not _pid_alive(pid)

    def release(self) -> None:
        """Removes the lock file if this process still holds it (idempotent)."""
        if not self.held:
            return
        self.held = False
        if read_holder(self.path).get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
