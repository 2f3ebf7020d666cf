"""``scripts/study_window_length.py smoke=true``: one tiny run per window length and their report."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from tests.helpers import REPO, make_tiny_split
from tests.reporting.tiny import Tables, subprocess_env


@pytest.mark.slow
def test_smoke_study_trains_each_length_and_reports_them(tmp_path):
    root, split = make_tiny_split(tmp_path / "data", num_samples=16_000)
    out = tmp_path / "study"
    lengths = ["4000", "8000"]  # two of the four, to keep the test short; each is a separate run
    command = [sys.executable, str(REPO / "scripts" / "study_window_length.py"), "smoke=true", f"out={out}",
               f"lengths={','.join(lengths)}", f"data.root={root}", f"data.split={split}", "trainer.verbose=0"]
    done = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for length in lengths:
        run_dir = out / f"window_{length}"
        assert (run_dir / "best.keras").is_file() and (run_dir / "best.test.greedy.eval.json").is_file()
    with open(out / "report" / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["trainer.window_length"] for r in rows] == lengths
    assert [r["epochs"] for r in rows] == ["1", "1"] and all(r["test CER"] for r in rows)
    tables = Tables((out / "report" / "index.html").read_text(encoding="utf-8"))
    assert tables.column("summary", "run") == [f"tcn trainer.window_length={n}" for n in lengths]
    assert (out / "report" / "best_cer.png").is_file()
    assert "report: " in done.stdout

    # The same command again finds the runs finished: nothing is retrained, a new report is written.
    again = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already has 1 epochs" in again.stdout and (out / "report-2" / "index.html").is_file()


@pytest.mark.parametrize(("argument", "message"), [
    ("epochs=0", "epochs must be >= 1, got 0"),
    ("lengths=4000,x", "not comma-separated integers"),
    ("trainer.window_length=8000", "trainer.window_length=8000: the study sets this key itself"),
])
def test_bad_arguments_are_one_line_and_exit_2(argument, message):
    command = [sys.executable, str(REPO / "scripts" / "study_window_length.py"), argument]
    done = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
