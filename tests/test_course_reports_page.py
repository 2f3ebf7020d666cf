"""docs/course-reports.md: every experiment of the four course reports has a row with an emgtf
command, and every command is one emgtf accepts: its config composes, its model builds and fits
the training window (for a sweep, at every value of the grid)."""

from __future__ import annotations

import re
import shlex

import pytest

from emgtf import config, models
from emgtf.training.config_checks import check_window_fits
from emgtf.tuning import space as search_space
from tests.helpers import REPO

PAGE = REPO / "docs" / "course-reports.md"
REAL = ["data=user_89335547", "data.root=/nonexistent/emg2qwerty", "trainer=reference"]
# The experiments the issue and ../shared/DATA.md attribute to each report (words of its row).
EXPERIMENTS = {
    "Hou, Li, Hu": ["TDS baseline", "BiLSTM 2 x 256", "electrode channels", "fixed subset",
                    "share of the training data"],
    "Hariharan et al.": ["L2 1e-4 + dropout 0.2", "Regularisation search", "every n-th sample",
                         "Min-max", "combinations"],
    "Chen et al.": ["BiGRU + Gaussian noise", "2 kHz -> 1 kHz", "2000 / 1000 / 500 Hz",
                    "low-pass at 30 Hz", "512 frames"],
    "Gray et al.": ["BiLSTM (4 x 256)"],
    "The other ideas the reports tried": [
        "Dropout", "Batch norm", "L2 weight penalty", "Elastic net", "Gaussian noise",
        "Down-up resampling", "Temporal crop", "Time stretch", "Channel masking",
        "Window lengths", "TCN", "ConvResNet", "Transformer"],
}


def sections() -> dict[str, list[str]]:
    """Table rows (their text) under each ``## `` heading."""
    out, current = {}, None
    for line in PAGE.read_text().splitlines():
        if line.startswith("## "):
            current = out.setdefault(line[3:].strip(), [])
        elif current is not None and line.startswith("| ") and not line.startswith("|---"):
            current.append(line)
    return out


def commands(row: str) -> list[str]:
    return re.findall(r"`(python (?:-m emgtf\.\w+|scripts/\S+)[^`]*)`", row)


def test_every_experiment_of_the_four_reports_has_a_row_with_a_command():
    found = sections()
    for report, experiments in EXPERIMENTS.items():
        rows = found[report]
        for experiment in experiments:
            matching = [r for r in rows if experiment in r.split("|")[1]]
            assert len(matching) == 1, (report, experiment)
            assert commands(matching[0]), (report, experiment)
            assert "$REAL" in commands(matching[0])[0]
    text = PAGE.read_text()
    assert "Synthetic data ranks methods; it does not reproduce real CERs" in text
    for number in ("22.17", "11.80", "20.78", "19.45", "26.41"):  # DATA.md's report numbers
        assert number in text


def all_commands() -> list[str]:
    return [c for rows in sections().values() for r in rows for c in commands(r)]


@pytest.mark.parametrize("command", [c for c in all_commands() if "scripts/" not in c])
def test_every_command_composes_builds_its_model_and_fits_the_window(command):
    words = shlex.split(command)
    tool = words[2].split(".")[1]
    overrides = []
    for word in words[3:]:
        overrides += REAL if word == "$REAL" else [word]
    cfg = config.compose("fit" if tool == "fit" else "tune", overrides)
    family, hp = config.model_spec(cfg)
    if tool == "fit":
        check_window_fits(models.build(family, **hp), cfg)
        return
    space = search_space.load(cfg.space)
    search_space.check_keys(space, cfg)
    assert cfg.model.family == "tds_conv_ctc"  # the command's model, not the space's small_tds
    for entry in space.hyperparameters:  # every value of a swept model hyperparameter fits
        if entry.key in hp and entry.type in ("choice", "int"):
            values = entry.values or range(entry.min, entry.max + 1, entry.step or 1)
            for value in values:
                check_window_fits(models.build(family, **{**hp, entry.key: value}), cfg)


def test_the_window_study_script_exists():
    assert any("scripts/study_window_length.py" in c for c in all_commands())
    assert (REPO / "scripts" / "study_window_length.py").is_file()
