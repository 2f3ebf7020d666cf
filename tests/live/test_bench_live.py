"""``scripts/benchmark.py live``: a replay process and a stream process per decoder, over the
loopback; one JSON line with the figures, the CPU model and the load."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO


@pytest.mark.slow
def test_benchmark_live_prints_one_json_line(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "live", "seconds=4",
                           "model=small_tds"], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    assert doc["benchmark"] == "live" and doc["cpu_count"] >= 1 and doc["cpu_model"]
    assert doc["model"].startswith("small_tds (tds_conv_ctc), untrained") and len(doc["load_average"]) == 3
    assert doc["session"] == "synthetic seed 0 user 0 session 0" and "greedy_truth" not in doc
    for name in ("greedy", "beam_lm"):
        assert doc[f"{name}_ended"] == "end of the replay" and doc[f"{name}_seconds"] == 4.0
        assert doc[f"{name}_chunks"] == 100 and doc[f"{name}_gaps"] == 0
        assert doc[f"{name}_cpu_ms_per_chunk_median"] > 0 and doc[f"{name}_target_keys"] > 0
