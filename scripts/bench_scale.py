"""How the input pipeline's start-up grows with the data: sessions indexed, first batch, windows/s.

    python scripts/benchmark.py scale [--counts 10,100,1000] [--seconds 4] [--long-minutes 20]

For each count N, writes N synthetic sessions of ``--seconds`` each (white noise of the reference
scale, ~4 keys a second) and builds the training pipeline (8000-sample windows, 1800/200 context,
jitter, shuffle, batch 32) three times: with no session-index cache and the files dropped from the
operating system's page cache (``"page_cache": "dropped"``: a first run after a reboot); with no
index cache, the files' pages as that build left them (``"in memory"``: a first run on files read
recently); with the index cached by the builds before (``"index_cache": "warm"``: every later run).
Then one long session of ``--long-minutes``, the same way. A dataset of one short session is
built first and not reported, so that no case pays TensorFlow's start-up. Prints one JSON line
per case: build seconds, seconds to the first batch, windows/s over a few batches, peak RSS and
the process's open files after reading.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from bench_pipeline import write_sessions


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else -1


def drop_page_cache(paths: list[Path]) -> bool:
    """Asks the kernel to forget the files' cached pages (no root needed); False where it cannot."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # written pages must be on disk before they can be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def measure(paths: list[Path], batches: int = 5) -> dict:
    from emgtf.data import make_dataset

    start = time.perf_counter()
    dataset = make_dataset([str(p) for p in paths], window_length=8000, padding=(1800, 200), jitter=True,
                           shuffle=True, batch_size=32, seed=0)
    built = time.perf_counter() - start
    iterator = iter(dataset)
    next(iterator)
    first = time.perf_counter() - start
    windows, t0 = 0, time.perf_counter()
    for _, batch in zip(range(batches), iterator):
        windows += int(batch["emg"].shape[0])
    rate = windows / (time.perf_counter() - t0) if windows else None
    return {"build_s": round(built, 3), "first_batch_s": round(first, 3),
            "windows_per_second": None if rate is None else round(rate, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "open_files": _open_files()}


def main(argv: list[str]) -> int:
    from emgtf.cli.parsing import ArgumentParser

    parser = ArgumentParser(prog="benchmark.py scale")
    parser.add_argument("--counts", default="10,100,1000")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--long-minutes", type=float, default=20.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="emgtf-scale-") as tmp:
        os.environ["EMGTF_CACHE"] = str(Path(tmp) / "cache")  # a cold cache of our own
        # TensorFlow's first dataset in a process costs about half a second more (tf.data and
        # tracing start-up), paid here, not by the first case.
        measure(write_sessions(Path(tmp), 1, 5 / 60, seed=0))
        cases = [(int(n), args.seconds / 60) for n in args.counts.split(",") if n]
        if args.long_minutes > 0:
            cases.append((1, args.long_minutes))
        for count, minutes in cases:
            folder = Path(tmp) / f"n{count}-{minutes:g}"
            folder.mkdir()
            paths = write_sessions(folder, count, minutes, seed=count)
            for cache, pages in (("cold", "dropped"), ("cold", "in memory"), ("warm", "in memory")):
                if cache == "cold":
                    from emgtf.data import index_cache

                    shutil.rmtree(index_cache.cache_file(paths[0]).parent, ignore_errors=True)
                if pages == "dropped" and not drop_page_cache(paths):
                    pages = "as written"
                result = measure(paths)
                print(json.dumps({"benchmark": "scale", "sessions": count, "minutes_each": minutes,
                                  "index_cache": cache, "page_cache": pages, **result,
                                  "cpu_count": os.cpu_count()}), flush=True)
            for p in paths:
                p.unlink()
    return 0
