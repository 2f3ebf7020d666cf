"""Config composition (Hydra Compose API over configs/), overrides, errors, --help and --dry-run."""

import math

import pytest
import yaml
from omegaconf import OmegaConf

from emgtf import config
from emgtf.errors import EmgtfError
from tests.helpers import run_command


def test_default_fit_config_has_the_documented_keys():
    cfg = config.compose("fit")
    for key in ("data.root", "data.split", "model.family", "trainer.epochs", "trainer.batch_size",
                "run_dir", "checkpoint", "seed", "resume"):
        assert OmegaConf.select(cfg, key, default="<absent>") != "<absent>", key
    # The default runs anywhere: the embedded synthetic data and the CPU preset.
    assert cfg.data.root is None and cfg.data.split is None
    assert cfg.trainer.epochs < 150 and cfg.trainer.deterministic is True
    assert cfg.resume is False and cfg.run_dir is None


def test_overrides_set_values_and_pick_group_options():
    cfg = config.compose("fit", ["model=tds_rnn", "model.hidden_size=64", "trainer.epochs=3",
                                 "optimizer=adamw", "data.root=/data/x", "data.split=user_89335547"])
    assert cfg.model.family == "tds_rnn" and cfg.model.hidden_size == 64
    assert cfg.trainer.epochs == 3 and cfg.optimizer.name == "adamw"
    assert cfg.data.root == "/data/x"


def test_reference_trainer_is_the_full_reference_recipe():
    cfg = config.compose("fit", ["trainer=reference"])
    t = cfg.trainer
    assert (t.epochs, t.batch_size, t.window_length, list(t.padding), t.jitter) == (150, 32, 8000, [1800, 200], True)
    assert cfg.model.family == "tds_conv_ctc" and cfg.model.spec_augment is True
    assert cfg.augment.band_rotation is True and cfg.augment.alignment_jitter == 120
    assert cfg.optimizer.name == "adam" and cfg.optimizer.learning_rate == 1e-3
    # A group chosen on the command line beats the preset's choice.
    assert config.compose("fit", ["trainer=reference", "model=rnn"]).model.family == "rnn"


def test_reference_schedule_matches_the_recipe_epoch_by_epoch():
    from emgtf.training.schedules import WarmupCosine, make_schedule

    cfg = config.compose("fit", ["trainer=reference"])
    steps = 7
    lr = make_schedule(cfg.schedule, peak=cfg.optimizer.learning_rate, epochs=150, steps_per_epoch=steps)

    def at(epoch, step=0):
        return float(lr(epoch * steps + step))

    assert at(0) == pytest.approx(1e-8, rel=1e-3)
    assert at(5) == pytest.approx(1e-8 + (1e-3 - 1e-8) * 0.5, rel=1e-5)
    assert at(5, 6) == at(5)  # stepped per epoch, like the reference
    assert at(10) == pytest.approx(1e-3, rel=1e-5)
    assert at(80) == pytest.approx(1e-6 + (1e-3 - 1e-6) * 0.5 * (1 + math.cos(math.pi * 70 / 140)), rel=1e-4)
    assert float(lr(150 * steps)) == pytest.approx(1e-6, rel=1e-3)
    # The schedule travels inside a checkpoint's optimizer config.
    again = WarmupCosine.from_config(lr.get_config())
    assert float(again(123)) == float(lr(123))


def test_default_schedule_steps_every_batch_and_scales_to_the_run():
    from emgtf.training.schedules import make_schedule

    cfg = config.compose("fit", ["trainer.epochs=15"])
    lr = make_schedule(cfg.schedule, peak=1e-3, epochs=15, steps_per_epoch=10)
    assert lr.warmup_steps == 10  # 1/15 of the run, like 10 of 150 epochs
    assert float(lr(5)) == pytest.approx(0.5 * 1e-3, rel=1e-3)  # within the first epoch
    assert float(lr(1)) < float(lr(2)) < float(lr(10)) and float(lr(11)) < float(lr(10))


def test_optimizer_and_schedule_read_their_yaml_and_name_a_missing_key():
    from emgtf.training.optimizers import make_optimizer
    from emgtf.training.schedules import make_schedule

    cfg = config.compose("fit", [])
    assert make_optimizer(cfg.optimizer, 1e-3).epsilon == cfg.optimizer.epsilon  # the YAML's 1e-8
    optimizer = config.to_container(cfg.optimizer)
    del optimizer["beta_1"]
    with pytest.raises(EmgtfError, match=r"^config key 'optimizer\.beta_1' is missing"):
        make_optimizer(optimizer, 1e-3)
    schedule = config.to_container(cfg.schedule)
    del schedule["warmup_fraction"]
    with pytest.raises(EmgtfError, match=r"^config key 'schedule\.warmup_fraction' is missing"):
        make_schedule(schedule, peak=1e-3, epochs=2, steps_per_epoch=3)


def test_every_model_config_holds_its_family_hyperparameters():
    from emgtf import models

    for family in models.available():
        cfg = config.compose("fit", [f"model={family}"])
        hp = config.to_container(cfg.model)
        assert hp.pop("family") == family
        # The family configs are the families' defaults, key for key (tds_conv_ctc: the reference).
        assert hp == models.default_hyperparameters(family), family
    # The CPU presets (the default small_tds, the offline small_rnn): a family's keys, every one.
    for overrides in ([], ["model=small_rnn"]):
        preset = config.to_container(config.compose("fit", overrides).model)
        family = preset.pop("family")
        assert set(preset) == set(models.default_hyperparameters(family)), overrides


def test_unknown_key_is_a_one_line_error_naming_it():
    with pytest.raises(EmgtfError, match=r"unknown config key 'trainer\.epoch'.*did you mean 'trainer\.epochs'"):
        config.compose("fit", ["trainer.epoch=3"])
    with pytest.raises(EmgtfError, match=r"unknown model 'lstm9'.*tds_conv_ctc"):
        config.compose("fit", ["model=lstm9"])
    with pytest.raises(EmgtfError, match=r"bad override 'seed=\[1'"):
        config.compose("fit", ["seed=[1"])


def test_mandatory_values_are_reported():
    cfg = config.compose("fit", ["data=user_89335547"])
    with pytest.raises(EmgtfError, match=r"'data\.root' must be set"):
        config.check_complete(cfg)


def test_overrides_of_a_saved_config(tmp_path):
    saved = tmp_path / "config.yaml"
    OmegaConf.save(config.compose("fit"), saved)
    cfg = config.apply_overrides(config.load_saved(saved), ["trainer.epochs=40", "optimizer.learning_rate=3e-4"])
    assert cfg.trainer.epochs == 40 and cfg.optimizer.learning_rate == 3e-4
    with pytest.raises(EmgtfError, match="cannot change config group 'model'"):
        config.apply_overrides(cfg, ["model=rnn"])
    with pytest.raises(EmgtfError, match=r"unknown config key 'trainer\.epoch'"):
        config.apply_overrides(cfg, ["trainer.epoch=4"])


def test_cli_bad_override_exits_2_with_one_line(capsys):
    result = run_command(capsys, "fit", "trainer.epoch=3")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "emgtf.fit: error: unknown config key 'trainer.epoch' (override 'trainer.epoch=3'); "
        "did you mean 'trainer.epochs'?"
    ]
    result = run_command(capsys, "evaluate")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "emgtf.evaluate: error: config key 'checkpoint' must be set (python -m emgtf.evaluate checkpoint=...)"
    )


def test_cli_help_lists_groups_and_options(capsys):
    out = run_command(capsys, "fit", "--help")
    assert out.returncode == 0
    for group in config.GROUPS:
        line = next(ln for ln in out.stdout.splitlines() if ln.strip().startswith(f"{group}="))
        assert set(line.split("=", 1)[1].split()[0].split("|")) == set(config.group_options(group))
    assert "(default: cpu)" in out.stdout and "(default: small_tds)" in out.stdout
    out = run_command(capsys, "evaluate", "--help")
    assert out.returncode == 0 and "decoder=beam|beam_lm|greedy" in out.stdout


def test_cli_dry_run_prints_the_resolved_config_and_trains_nothing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    out = run_command(capsys, "fit", "--dry-run", "trainer=reference", "trainer.epochs=7", f"run_dir={run_dir}")
    assert out.returncode == 0, out.stderr
    printed = yaml.safe_load(out.stdout)
    assert printed["trainer"]["epochs"] == 7 and printed["model"]["family"] == "tds_conv_ctc"
    assert printed["run_dir"] == str(run_dir)
    assert not run_dir.exists()


def test_override_key_names_what_an_override_sets():
    assert [config.override_key(o) for o in ("model.dropout=0.1", "+trial.x=1", "~logger", "model=tcn")] == [
        "model.dropout", "trial.x", "logger", "model"]
    assert config.chooses_model("model=tcn") and config.chooses_model("model.family=tcn")
    assert not config.chooses_model("model.dropout=0.1")
