"""Fetching many files at once (a thread pool), with one free-space check for all of them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait

from emgtf.errors import EmgtfError
from emgtf.fetch.progress import Progress
from emgtf.fetch.transfer import Fetcher, Target, check_free_space, part_path


def missing_bytes(targets: list[Target]) -> int:
    """Bytes still to fetch for the targets not yet present (their ``.part`` files counted)."""
    total = 0
    for t in targets:
        if t.size is None or t.path.exists():
            continue
        part = part_path(t.path)
        total += t.size - (part.stat().st_size if part.exists() else 0)
    return total


def fetch_all(targets: list[Target], *, mirror: str | None = None, progress: Progress | None = None,
              jobs: int = 4, retries: int = 5, backoff: float = 2.0) -> list[tuple[Target, str]]:
    """Fetches every target, ``jobs`` at a time; returns (target, "fetched" | "present") in order.

    A file that fails does not stop the others; afterwards the first failure is raised as one
    line that says how many failed.
    """
    if not targets:
        return []
    common = targets[0].path.parent
    for t in targets[1:]:
        while common not in t.path.parents and common != common.parent:
            common = common.parent
    check_free_space(common, missing_bytes(targets), f"fetching {len(targets)} files")
    fetcher = Fetcher(mirror=mirror, progress=progress, retries=retries, backoff=backoff)
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="emgtf-fetch")
    futures = [pool.submit(fetcher.fetch, t) for t in targets]
    try:
        wait(futures)
    except KeyboardInterrupt:
        # Ctrl-C: the running transfers stop at their next chunk, keeping their .part files.
        fetcher.stop.set()
        for future in futures:
            future.cancel()
        raise
    finally:
        pool.shutdown(wait=True)
    results, errors = [], []
    for t, future in zip(targets, futures):
        error = future.exception()
        if isinstance(error, KeyboardInterrupt):
            raise error
        if error is None:
            results.append((t, future.result()))
        elif isinstance(error, EmgtfError):
            errors.append(error)
        else:
            raise error
    if errors:
        more = f" ({len(errors)} of {len(targets)} files failed; the others are verified)" if len(targets) > 1 else ""
        raise EmgtfError(f"{errors[0]}{more}")
    return results
