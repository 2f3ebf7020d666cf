"""Input-pipeline throughput: training windows per second read from session files on disk.

    python scripts/benchmark.py pipeline [--sessions 4] [--minutes 10] [--augment reference]

Writes ``--sessions`` synthetic sessions of ``--minutes`` each (2 kHz white noise of the reference
scale, ~4 keystrokes a second) into a temporary folder, builds the training pipeline (windows of
8000 samples with 1800/200 context, jitter, shuffle, batch 32, the chosen augmentations), iterates
``--warmup`` batches, then times ``--batches`` batches (a new iterator each epoch, as Keras does).
Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from emgtf import NUM_CHANNELS, SAMPLE_RATE

AUGMENTATIONS = {
    "none": None,
    "reference": {"band_rotation": True, "alignment_jitter": 120},
    "all": {
        "band_rotation": True,
        "alignment_jitter": 120,
        "gaussian_noise": 0.01,
        "down_up": [2, 4],
        "down_up_prob": 0.5,
        "time_stretch": 0.1,
        "channel_mask": 4,
    },
}


def write_sessions(folder: Path, count: int, minutes: float, seed: int) -> list[Path]:
    from emgtf.data import write_session

    rng = np.random.default_rng(seed)
    samples = int(minutes * 60 * SAMPLE_RATE)
    letters = list("abcdefghijklmnopqrstuvwxyz") + ["Key.space"] * 5 + ["Key.backspace"]
    paths = []
    for i in range(count):
        t0 = 1_622_765_527.0 + i * 3600
        time_ = t0 + np.arange(samples) / SAMPLE_RATE
        presses = np.sort(rng.uniform(time_[0], time_[-1], size=int(minutes * 60 * 4)))
        keys = [{"key": str(rng.choice(letters)), "start": float(p), "end": float(p) + 0.08} for p in presses]
        emg = rng.normal(0.0, 2.5, size=(samples, 2, NUM_CHANNELS)).astype(np.float32)
        paths.append(write_session(
            folder / f"bench-{i}.hdf5", time=time_, emg_left=emg[:, 0], emg_right=emg[:, 1],
            keystrokes=keys, prompts=[], session_name=f"bench-{i}", user="bench",
        ))
    return paths


def main(argv: list[str]) -> int:
    from emgtf.cli.parsing import ArgumentParser

    parser = ArgumentParser(prog="benchmark.py pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--window", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=5, help="batches before timing")
    parser.add_argument("--batches", type=int, default=40, help="batches timed")
    parser.add_argument("--augment", choices=sorted(AUGMENTATIONS), default="reference")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from emgtf.data import make_dataset

    with tempfile.TemporaryDirectory(prefix="emgtf-bench-") as tmp:
        t = time.perf_counter()
        paths = write_sessions(Path(tmp), args.sessions, args.minutes, args.seed)
        write_s = time.perf_counter() - t
        t = time.perf_counter()
        dataset = make_dataset(
            paths, window_length=args.window, padding=(1800, 200), jitter=True, shuffle=True,
            batch_size=args.batch, seed=args.seed, augment=AUGMENTATIONS[args.augment],
        )
        build_s = time.perf_counter() - t

        def batches():
            while True:  # epochs, each a fresh iterator
                yield from dataset

        stream = batches()
        for _ in range(args.warmup):
            next(stream)
        windows = 0
        t, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.batches):
            windows += int(next(stream)["emg"].shape[0])
        elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
        stream.close()  # ends the running epoch's iterator now, not at interpreter exit
    print(json.dumps({
        "benchmark": "pipeline",
        "windows_per_second": round(windows / elapsed, 1),
        "batch": args.batch,
        "window": args.window,
        "padding": [1800, 200],
        "jitter": True,
        "shuffle": True,
        "augmentations": args.augment,
        "augment_config": AUGMENTATIONS[args.augment],
        "sessions": args.sessions,
        "minutes_per_session": args.minutes,
        "windows_timed": windows,
        "seconds_timed": round(elapsed, 3),
        # CPU seconds of this process (all threads) per window: less sensitive than wall time
        # to other jobs on a shared machine; the load average tells how shared it was.
        "cpu_ms_per_window": round(1000 * cpu / windows, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "build_seconds": round(build_s, 3),
        "write_seconds": round(write_s, 1),
        "cpu_count": os.cpu_count(),
    }))
    return 0
