#!/usr/bin/env python
"""emgtf benchmarks; each prints one JSON line with the machine's core count.

    python scripts/benchmark.py pipeline [--help]   input-pipeline windows per second
    python scripts/benchmark.py train [--help]      training windows per second of one model
    python scripts/benchmark.py decode [--help]     CTC decoding characters per second

Timings live here, never in test assertions.
"""

from __future__ import annotations

import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # the bench_* modules, and emgtf from a plain checkout

COMMANDS = {"pipeline": "bench_pipeline", "train": "bench_train", "decode": "bench_decode"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
