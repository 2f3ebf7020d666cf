#!/usr/bin/env python
"""emgtf benchmarks; each prints one JSON line with the machine's core count.

    python scripts/benchmark.py pipeline [--help]   input-pipeline windows per second
    python scripts/benchmark.py train [--help]      training windows per second of one model
    python scripts/benchmark.py compare [...]       the same for the TDS model beside PyTorch's
    python scripts/benchmark.py decode [--help]     CTC decoding characters per second
    python scripts/benchmark.py scale [--help]      pipeline start-up against the number of sessions
    python scripts/benchmark.py stream [--help]     CPU ms per 40 ms chunk and key latency, streaming
    python scripts/benchmark.py live [--help]       the same end to end over LSL (replay -> stream)
    python scripts/benchmark.py evaluate [--help]   whole-session evaluation: time and peak RSS beside PyTorch's

Timings live here, never in test assertions.
"""

from __future__ import annotations

import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # the bench_* modules, and emgtf from a plain checkout

COMMANDS = {"pipeline": "bench_pipeline", "train": "bench_train", "compare": "bench_train",
            "decode": "bench_decode", "scale": "bench_scale", "stream": "bench_stream",
            "live": "bench_live", "evaluate": "bench_evaluate"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    # As the commands run: their process settings (oneDNN on, TensorFlow's start-up chatter
    # off), so a benchmark measures what a user's run gets, and a mistake is one line.
    from emgtf.cli import run

    def bench(rest: list[str]) -> int:
        # Imported once the process is set up: a bench module may import TensorFlow.
        return int(importlib.import_module(COMMANDS[argv[0]]).main(rest) or 0)

    rest = argv[1:] + (["vs_torch=true"] if argv[0] == "compare" else [])
    return run(bench, f"benchmark.py {argv[0]}", rest, tensorflow=argv[0] != "decode")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
