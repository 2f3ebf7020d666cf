"""``scripts/benchmark.py``'s subcommands take key=value like the commands (and their flags), and
a mistake is one line. Timings are printed, never asserted."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO
from tests.test_bench_train import run_benchmark


def test_the_decode_and_pipeline_benchmarks_take_key_value():
    decode = run_benchmark("decode", "chars=120", "repeats=1", "seed=3")
    assert decode["benchmark"] == "decode" and decode["chars"] == 120
    pipeline = run_benchmark("pipeline", "sessions=1", "minutes=0.5", "window=2000", "batch=4",
                             "warmup=1", "batches=2", "augment=none")
    assert (pipeline["batch"], pipeline["window"], pipeline["windows_timed"]) == (4, 2000, 8)
    assert pipeline["augmentations"] == "none"


def test_a_benchmark_mistake_is_one_line():
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "stream", "thread=1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "thread" in done.stderr
