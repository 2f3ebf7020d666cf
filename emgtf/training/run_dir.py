"""The run folder of a training run or a search: a fresh one per run, never written over."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from emgtf.errors import EmgtfError


def default_run_dir(label: str) -> Path:
    """``runs/<date>-<time>-<label>``, with a -2, -3 ... suffix if that folder exists."""
    base = Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{label}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def prepare_run_dir(run_dir, *, resume: bool, family: str) -> Path:
    """The run folder: refuses to write into a non-empty one unless resuming."""
    if run_dir is None:
        if resume:
            raise EmgtfError("resume=true needs run_dir=<the folder of the run to continue>")
        path = default_run_dir(family)
    else:
        path = Path(str(run_dir)).expanduser()
        if resume:
            if not (path / "last.keras").is_file():
                raise EmgtfError(f"resume=true: {path} has no last.keras to continue from")
        elif path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise EmgtfError(
                f"run_dir {path} is not empty; choose a new run_dir, or resume=true to continue that run"
            )
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
