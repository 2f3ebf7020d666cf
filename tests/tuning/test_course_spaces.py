"""The course reports' sweeps (tuner/channels, fraction, sample_rate, preprocessing): each a tiny
grid search end to end (tiny TCN, one epoch of one batch, tiny data, test CER column), its trials
trained with the swept preprocessing, and python -m emgtf.report drawing CER against the swept
value."""

from __future__ import annotations

import json

import keras
import pytest

from omegaconf import OmegaConf

from emgtf import config
from emgtf.cli import report as report_cli
from emgtf.cli import run
from emgtf.errors import EmgtfError
from emgtf.reporting.sweep import load_sweep
from emgtf.tuning import search as tune
from emgtf.tuning import space as search_space
from tests.helpers import make_tiny_split, tiny_tcn_overrides

# (space, trials run: the first ones of its grid, the swept name, its config key)
SPACES = {
    "channels": (3, "electrode_count", "model.electrode_count"),
    "fraction": (2, "fraction", "trainer.fraction"),
    "sample_rate": (3, "downsample", "model.downsample"),
    "preprocessing": (3, "preprocessing", None),
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_split(tmp_path_factory.mktemp("course_data"), num_samples=8000)


def test_the_course_spaces_load_and_name_known_keys():
    base = config.compose("tune", ["model=small_tds"])
    for name in SPACES:
        space = search_space.load(name)
        search_space.check_keys(space, base)
        assert "model=small_tds" in space.overrides


def layer_kinds(checkpoint):
    model = keras.saving.load_model(checkpoint, compile=False)
    return {type(layer).__name__: layer for layer in model.layers}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SPACES))
def test_a_course_space_sweeps_and_its_report_draws_cer_against_the_value(name, data, tmp_path, capsys):
    trials, swept, key = SPACES[name]
    run_dir = tmp_path / name
    overrides = tiny_tcn_overrides(data, run_dir, f"space={name}", "tuner.algorithm=grid",
                                   f"tuner.max_trials={trials}", "tuner.test=true")
    result = tune.run_search(overrides, log=lambda *a: None)
    done = [t for t in result.trials if t.status == "COMPLETED"]
    assert len(done) == trials
    for trial in done:
        value = trial.hyperparameters[swept]
        cfg = config.load_saved(trial.run_dir / "config.yaml")
        assert cfg.model.family == "tcn"  # the command line's model over the space's small_tds
        if key is not None:
            assert OmegaConf.select(cfg, key) == value
        layers = layer_kinds(trial.run_dir / "best.keras")
        if name == "channels":
            assert layers["ElectrodeSubset"].channels == list(range(value))
        elif name == "sample_rate":
            assert (layers["Downsample"].factor if value > 1 else 1) == value
            assert ("Downsample" in layers) == (value > 1)
        elif name == "preprocessing":
            assert ("Downsample" in layers) == (value != "none")
            assert ("MinMaxNormalization" in layers) == (value == "downsample_stretch_minmax")
            if value != "none":
                assert layers["Downsample"].anti_alias is False  # every 2nd sample
            assert cfg.augment.time_stretch == (0.1 if value == "downsample_stretch_minmax" else 0.0)
        assert trial.metrics["test_CER"] >= 0
    sweep = load_sweep(run_dir)
    assert sweep.name == swept and len(sweep.points) == trials
    assert all(p.val_cer is not None and p.test_cer is not None for p in sweep.points)
    assert sweep.numeric == (name != "preprocessing")
    if name == "preprocessing":  # in the space's order of choices
        assert sweep.values() == ["none", "downsample", "downsample_stretch_minmax"]
    else:
        assert sweep.values() == sorted(sweep.values())
    out = tmp_path / "report"
    capsys.readouterr()
    assert run(report_cli.main, "emgtf.report", [str(run_dir), f"--out={out}"]) == 0
    for ext in ("png", "svg"):
        assert (out / f"sweep_{swept}.{ext}").stat().st_size > 1000
    page = (out / "index.html").read_text()
    assert f"sweep of {swept}" in page and f"val and test CER against {swept}" in page
    svg = (out / f"sweep_{swept}.svg").read_text()
    assert "test CER" in svg and "val CER" in svg


def test_a_tune_folder_with_nothing_swept_has_no_sweep(tmp_path):
    (tmp_path / "space.yaml").write_text("hyperparameters:\n  downsample: {type: choice, values: [1, 2]}\n")
    trial = {"trial": "0", "status": "COMPLETED", "val_CER": 50.0, "test_CER": 60.0,
             "hyperparameters": {"downsample": 2}}
    (tmp_path / "best_trials.json").write_text(json.dumps([trial, {**trial, "trial": "1",
                                                                   "status": "FAILED"}]))
    assert load_sweep(tmp_path) is None
    (tmp_path / "best_trials.json").write_text(json.dumps([trial, {**trial, "trial": "1",
                                                                   "hyperparameters": {"downsample": 1}}]))
    sweep = load_sweep(tmp_path)
    assert sweep.values() == [1, 2] and sweep.mean(2, "test_cer") == 60.0
    (tmp_path / "best_trials.json").write_text("{}")
    with pytest.raises(EmgtfError, match="best_trials.json: expected a list of trials"):
        load_sweep(tmp_path)
