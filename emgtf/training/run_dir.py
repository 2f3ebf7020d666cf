"""The run folder of a training run or a search: a fresh one per run, never written over.

A folder is claimed with ``claim_run_dir``, which takes its lock (``emgtf.training.run_lock``)
before looking inside, so that two processes cannot both find it free.

A run that died before its first checkpoint (killed in epoch 1, a full disk) leaves only its
``config.yaml`` (and its lock, TensorBoard logs): nothing that could be continued, nothing worth
keeping. Such a folder may be used again: a plain fit starts there afresh, and so does
``resume=true``, which says so (there is no ``last.keras`` to continue from).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from emgtf.console import discard
from emgtf.errors import EmgtfError
from emgtf.files import fresh_path
from emgtf.run_folder import LAST_FILE, RunFolder
from emgtf.training.run_lock import RunLock


def default_run_dir(label: str) -> Path:
    """``runs/<date>-<time>-<label>``, with a -2, -3 ... suffix if that folder exists."""
    return fresh_path(Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{label}")


@dataclass
class RunClaim:
    """A claimed run folder: its path, its lock (release it when the run ends) and whether the run
    continues from ``last.keras`` (``resume``: false for a fresh start, also after ``resume=true``
    on a run that never checkpointed)."""

    path: Path
    lock: RunLock
    resume: bool
    created: bool  # the folder did not exist before: remove it if the run never starts

    def release(self, *, discard: bool = False) -> None:
        """Releases the lock; ``discard``: also removes the folder if this claim created it and it
        is empty (a run rejected before writing anything leaves no folder behind)."""
        self.lock.release()
        if discard and self.created:
            remove_if_empty(self.path)


def claim_run_dir(run_dir, *, resume: bool, family: str, log: Callable[[str], None] | None = None) -> RunClaim:
    """Locks the run folder, then checks it may be used: a fresh or empty folder, a dead run's
    folder (see the module docstring), or with ``resume`` one that holds ``last.keras``. ``log``
    takes the notes on a dead run's folder (None: nothing is said; train passes its log's warnings)."""
    log = log or discard
    if run_dir is None:
        if resume:
            raise EmgtfError("resume=true needs run_dir=<the folder of the run to continue>")
        path = default_run_dir(family)
    else:
        path = Path(str(run_dir)).expanduser()
    if path.exists() and not path.is_dir():
        raise EmgtfError(f"run_dir {path} is a file, not a folder")
    if resume and not path.is_dir():
        raise EmgtfError(f"resume=true: {path} has no {LAST_FILE} to continue from")
    created = not path.exists()
    lock = RunLock.acquire(path)
    claim = RunClaim(path, lock, resume, created)
    try:
        folder = RunFolder(path)
        dead_run = folder.is_dead_run()
        if resume and not folder.can_resume():
            if not dead_run:
                raise EmgtfError(f"resume=true: {path} has no {LAST_FILE} to continue from")
            log(f"{path} holds a run that stopped before its first checkpoint; "
                "starting it afresh")
            claim.resume = False
        elif not resume and folder.has_contents():
            if not dead_run:
                raise EmgtfError(
                    f"run_dir {path} is not empty; choose a new run_dir, or resume=true to continue that run"
                )
            log(f"{path} holds only the config of a run that stopped before its first "
                "checkpoint; starting afresh there")
    except BaseException:
        claim.release(discard=True)
        raise
    return claim


def remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
