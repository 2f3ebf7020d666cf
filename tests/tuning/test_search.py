"""KerasTuner searches (``python -m emgtf.tune``) on tiny real data: trials trained by the fit loop,
val_CER as the objective, best checkpoint, resume after an interruption, search-space files and
their errors, and a distributed search (one chief, two workers) on localhost."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import keras_tuner
import pytest
from tests.helpers import REPO, make_tiny_split, python_sigint, tiny_tcn_overrides

from emgtf import config, models
from emgtf.cli import evaluate
from emgtf.cli import tune as tune_cli
from emgtf.tuning import distributed
from emgtf.tuning import search as tune
from emgtf.tuning import space as search_space
from emgtf.cli import run
from emgtf.errors import EmgtfError



@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three short sessions (train, val, test) of white noise with keystrokes."""
    return make_tiny_split(tmp_path_factory.mktemp("tune_data"))


def tiny(data, run_dir, *extra):
    """Overrides of a search whose trials take one epoch of one batch of a tiny TCN."""
    return tiny_tcn_overrides(data, run_dir, *extra)


class InterruptSecondTrial(keras.callbacks.Callback):
    """Ctrl-C (a real SIGINT) at the first batch of the second trial the search trains."""

    def __init__(self):
        super().__init__()
        self.trials = 0
        self.sent = False

    def on_train_begin(self, logs=None):
        self.trials += 1

    def on_train_batch_begin(self, batch, logs=None):
        if self.trials == 2 and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture(scope="module")
def searched(data, tmp_path_factory):
    """A two-trial random search interrupted during its second trial, then resumed."""
    run_dir = tmp_path_factory.mktemp("searches") / "regularization"
    overrides = tiny(data, run_dir, "space=regularization", "tuner.max_trials=2", "tuner.test=true")
    with python_sigint(), pytest.raises(KeyboardInterrupt):
        tune.run_search(overrides, callbacks=[InterruptSecondTrial()], log=lambda *a: None)
    first = run_dir / "trials" / "trial_0"
    before = {name: (first / name).stat().st_mtime_ns for name in ("best.keras", "history.csv", "worker.json")}
    oracle_before = json.loads((run_dir / tune.PROJECT / "oracle.json").read_text())
    lines = []
    result = tune.run_search(["resume=true", f"run_dir={run_dir}"], log=lambda *a: lines.append(" ".join(map(str, a))))
    return {"run_dir": run_dir, "result": result, "before": before, "oracle_before": oracle_before, "log": "\n".join(lines)}


def test_search_trains_two_trials_reports_val_cer_and_keeps_the_best_checkpoint(searched):
    run_dir, result = searched["run_dir"], searched["result"]
    assert result.role == "single"
    assert sorted(t.trial_id for t in result.trials) == ["0", "1"]
    for trial in result.trials:
        assert trial.status == "COMPLETED" and trial.val_cer >= 0 and trial.epochs == 1 and trial.best_epoch == 1
        # KerasTuner's own record of the trial holds the objective the metrics callback computed.
        record = json.loads((run_dir / tune.PROJECT / f"trial_{trial.trial_id}" / "trial.json").read_text())
        assert record["status"] == "COMPLETED"
        assert record["score"] == pytest.approx(trial.val_cer)
        history = (trial.run_dir / "history.csv").read_text().splitlines()
        assert history[0].startswith("epoch,") and "val/CER" in history[0] and len(history) == 2
        # The trial's config carries its hyperparameters, set in the model it trained.
        trial_cfg = config.load_saved(trial.run_dir / "config.yaml")
        assert trial_cfg.trial.id == trial.trial_id and trial_cfg.trial.search == "regularization"
        assert trial_cfg.model.dropout == pytest.approx(trial.hyperparameters["dropout"])
        assert trial_cfg.model.batch_norm == trial.hyperparameters["batch_norm"]
        assert "tuner" not in trial_cfg and "space" not in trial_cfg
        # What it cost, and (tuner.test=true) the test CER of its best checkpoint, as evaluate gives it.
        model = keras.saving.load_model(trial.run_dir / "best.keras", compile=False)
        assert trial.metrics["params"] == models.trainable_parameters(model) > 0
        seconds = sum(float(line.split(",")[-1]) for line in history[1:])
        assert trial.metrics["train_s"] == pytest.approx(seconds) and seconds > 0
        report = json.loads((trial.run_dir / "best.test.greedy.eval.json").read_text())
        assert trial.metrics["test_CER"] == pytest.approx(report["overall"]["CER"])
    # Best first, and the tables hold every trial with its hyperparameters.
    assert result.trials[0].val_cer <= result.trials[1].val_cer
    table = json.loads((run_dir / "best_trials.json").read_text())
    assert [r["trial"] for r in table] == [t.trial_id for t in result.trials]
    assert {"dropout", "penalty", "batch_norm"} <= set(table[0]["hyperparameters"])
    header = (run_dir / "best_trials.csv").read_text().splitlines()[0].split(",")
    assert {"rank", "trial", "val_CER", "val_rendered_CER", "test_CER", "params", "train_s", "epochs", "dropout",
            "batch_norm"} <= set(header)
    # The best trial's checkpoint, with its config beside it.
    best = result.trials[0]
    assert result.best_checkpoint == run_dir / "best.keras"
    assert (run_dir / "best.keras").read_bytes() == (best.run_dir / "best.keras").read_bytes()
    assert config.load_saved(run_dir / "config.yaml").trial.id == best.trial_id
    assert "val CER" in searched["log"] and f"best: trial {best.trial_id}" in searched["log"]
    printed = tune.trials_table(result.trials)
    assert "test CER" in printed and f"{int(best.metrics['params']):,}" in printed


def test_best_checkpoint_is_accepted_by_evaluate_and_export(searched, tmp_path):
    run_dir = searched["run_dir"]
    report = tmp_path / "report.json"
    assert run(evaluate.main, "emgtf.evaluate", [f"checkpoint={run_dir / 'best.keras'}", f"output={report}"]) == 0
    assert json.loads(report.read_text())["overall"]["CER"] >= 0
    export = pytest.importorskip("emgtf.cli.export")
    out = tmp_path / "exported"
    assert run(export.main, "emgtf.export", [f"checkpoint={run_dir / 'best.keras'}", f"out={out}", "format=keras"]) == 0
    assert (out / "model.keras").is_file()


def test_resume_continues_the_interrupted_trial_and_redoes_no_finished_one(searched):
    run_dir = searched["run_dir"]
    before = searched["oracle_before"]
    assert before["end_order"] == ["0"] and before["ongoing_trials"] == {"tuner0": "1"}
    first = run_dir / "trials" / "trial_0"
    after = {name: (first / name).stat().st_mtime_ns for name in searched["before"]}
    assert after == searched["before"]  # trial 0 was not trained again
    oracle = json.loads((run_dir / tune.PROJECT / "oracle.json").read_text())
    assert oracle["end_order"] == ["0", "1"] and oracle["ongoing_trials"] == {}
    assert searched["result"].trials_run_here == ["1"]


def test_an_interrupted_grid_search_resumes_and_tries_every_combination_once(data, tmp_path):
    # KerasTuner's grid oracle kept its order in memory only: the first new trial after a resume
    # failed with a KeyError (see search._resumable_grid_oracle).
    space = tmp_path / "grid.yaml"
    space.write_text("# three dropouts\nhyperparameters:\n  dropout: {type: choice, values: [0.0, 0.1, 0.2]}\n")
    run_dir = tmp_path / "grid"
    overrides = tiny(data, run_dir, f"space={space}", "tuner.algorithm=grid", "tuner.max_trials=10")
    with python_sigint(), pytest.raises(KeyboardInterrupt):
        tune.run_search(overrides, callbacks=[InterruptSecondTrial()], log=lambda *a: None)
    result = tune.run_search(["resume=true", f"run_dir={run_dir}"], log=lambda *a: None)
    tried = sorted(row.hyperparameters["dropout"] for row in result.trials if row.status == "COMPLETED")
    assert tried == [0.0, 0.1, 0.2]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 3 trials: a rough fit
def test_bayesian_search_fits_its_gaussian_process_after_the_initial_points(data, tmp_path):
    run_dir = tmp_path / "bayes"
    argv = tiny(data, run_dir, "space=regularization", "tuner.algorithm=bayesian",
                "tuner.max_trials=3", "tuner.num_initial_points=2")
    result = tune.run_search(argv, log=lambda *a: None)
    assert sorted(t.trial_id for t in result.trials) == ["0", "1", "2"]
    assert all(t.status == "COMPLETED" and t.val_cer >= 0 for t in result.trials)
    # The third trial came from the Gaussian process (scikit-learn), not from random sampling.
    oracle = json.loads((run_dir / tune.PROJECT / "oracle.json").read_text())
    assert oracle["end_order"] == ["0", "1", "2"]
    assert (run_dir / "best.keras").is_file()


def test_bayesian_without_scikit_learn_is_one_error_before_anything_is_written(monkeypatch, data, tmp_path, capsys):
    real = tune.importlib.util.find_spec
    monkeypatch.setattr(tune.importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    run_dir = tmp_path / "bayes"
    assert run(tune_cli.main, "emgtf.tune", tiny(data, run_dir, "tuner.algorithm=bayesian")) == 2
    err = capsys.readouterr().err
    assert err.startswith("emgtf.tune: error: tuner.algorithm=bayesian: needs scikit-learn") and err.count("\n") == 1
    assert not run_dir.exists() or not any(run_dir.iterdir())


@pytest.mark.slow
def test_hyperband_continues_a_trial_from_an_earlier_round(data, tmp_path):
    run_dir = tmp_path / "hyperband"
    argv = tiny(data, run_dir, "space=regularization", "tuner.algorithm=hyperband",
                "tuner.max_epochs=2", "tuner.factor=2")
    result = tune.run_search(argv, log=lambda *a: None)
    assert result.trials and all(t.status == "COMPLETED" for t in result.trials)
    continued = [t for t in result.trials if t.hyperparameters.get("tuner/trial_id")]
    assert continued, [t.hyperparameters for t in result.trials]
    for trial in continued:
        # Round two trains one more epoch on top of round one's run: two rows of history.
        assert trial.epochs == 2
        rows = (trial.run_dir / "history.csv").read_text().splitlines()[1:]
        assert [r.split(",")[0] for r in rows] == ["1", "2"]
        earlier = run_dir / "trials" / f"trial_{trial.hyperparameters['tuner/trial_id']}"
        assert (earlier / "history.csv").read_text().splitlines()[1] == rows[0]


def test_a_used_run_dir_is_refused_unless_resuming(searched, data):
    with pytest.raises(EmgtfError, match="is not empty; resume=true"):
        tune.Search(tiny(data, searched["run_dir"], "tuner.max_trials=2"))
    with pytest.raises(EmgtfError, match="cannot change its space"):
        tune.Search(["resume=true", f"run_dir={searched['run_dir']}", "space=family"])
    with pytest.raises(EmgtfError, match="cannot change its algorithm"):
        tune.Search(["resume=true", f"run_dir={searched['run_dir']}", "tuner.algorithm=bayesian"])


@pytest.mark.slow  # trains or starts a process: tens of seconds on 2 cores
def test_every_trial_failing_is_one_error_naming_the_space_and_the_key(data, tmp_path, capsys):
    space = tmp_path / "broken.yaml"
    space.write_text("hyperparameters:\n  n_fft: {type: int, min: 0, max: 1}\n")
    run_dir = tmp_path / "search"
    argv = tiny(data, run_dir, f"space={space}", "tuner.max_trials=2")
    assert run(tune_cli.main, "emgtf.tune", argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("emgtf.tune: error: every trial of the search failed (2 trials")
    assert str(space) in err and "hyperparameter 'n_fft'" in err
    table = json.loads((run_dir / "best_trials.json").read_text())
    assert [r["status"] for r in table] == ["FAILED", "FAILED"]
    assert all("n_fft" in r["message"] for r in table)
    # Stopped early when failures come in a row.
    with pytest.raises(EmgtfError, match=r"2 trials in a row failed .*n_fft"):
        tune.run_search(tiny(data, tmp_path / "again", f"space={space}", "tuner.max_trials=3",
                             "tuner.max_consecutive_failed_trials=2"), log=lambda *a: None)


@pytest.mark.parametrize(
    "text, message",
    [
        ("hyperparameters:\n  hiden_size: {type: int, min: 4, max: 8}\n",
         r"hyperparameters.hiden_size: unknown hyperparameter 'hiden_size' for model"),
        ("hyperparameters:\n  dropout: {type: float, min: 0.6, max: 0.5}\n",
         r"hyperparameters.dropout: min 0.6 > max 0.5"),
        ("hyperparameters:\n  lr: {type: float, min: 1.0e-4, max: 1.0e-2, key: optimizer.learnig_rate}\n",
         r"hyperparameters.lr: unknown config key 'optimizer.learnig_rate'"),
        ("hyperparameters:\n  l2: {type: float, min: 0.0, max: 1.0e-3, sampling: log}\n",
         r"hyperparameters.l2.min: log sampling needs min > 0"),
        ("hyperparameters:\n  l2: {type: float, min: 1.0e-6, max: 1.0e-3, when: {penalty: [l2]}}\n",
         r"hyperparameters.l2.when.penalty: no hyperparameter 'penalty' defined before"),
        ("hyperparameters:\n  dropout: {type: float, min: 0.0, max: 0.5, stepp: 0.1}\n",
         r"hyperparameters.dropout.stepp: unknown field"),
        ("hyperparameters:\n  model: {type: choice, values: [tcn, lstm_xl]}\n",
         r"hyperparameters.model: unknown model 'lstm_xl'"),
        ("hyperparameters:\n  dropout: {type: float, min: 0.0, max: 0.5}\n  dropout: {type: float, min: 0.0, max: 0.1}\n",
         r"not a readable YAML space file .*duplicate key"),
    ],
)
def test_bad_space_files_are_one_line_errors_naming_file_and_key(text, message, data, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(text)
    with pytest.raises(EmgtfError, match=message) as error:
        overrides = tiny(data, tmp_path / "run", f"space={space}")
        # A space that chooses the model: the command line names none (nor the TCN's own keys).
        tune.Search([o for o in overrides if not o.startswith("model")] if "model:" in text else overrides)
    assert str(error.value).startswith(str(space)) and "\n" not in str(error.value)


def test_unknown_space_or_search_setting_is_a_one_line_error(data, tmp_path, capsys):
    assert run(tune_cli.main, "emgtf.tune", tiny(data, tmp_path / "a", "space=regularisation")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emgtf.tune: error: space=regularisation: unknown search space 'regularisation'")
    assert "regularization" in err and "\n" not in err
    with pytest.raises(EmgtfError, match="tuner.algorithm: unknown algorithm 'annealing'"):
        tune.Search(tiny(data, tmp_path / "b", "tuner.algorithm=annealing"))
    with pytest.raises(EmgtfError, match="unknown config key 'tuner.max_trails'"):
        tune.Search(tiny(data, tmp_path / "c", "tuner.max_trails=3"))
    with pytest.raises(EmgtfError, match="chooses the model itself"):
        tune.Search(tiny(data, tmp_path / "d", "space=family"))  # tiny() sets model=tcn


def test_shipped_spaces_cover_the_issue_and_name_real_keys():
    assert {"regularization", "depth_width", "family"} <= set(search_space.available())
    base = config.compose("fit")
    for name in search_space.available():
        search_space.check_keys(search_space.load(name), base)
    reg = search_space.load("regularization")
    assert reg["dropout"].min == 0.0 and reg["dropout"].max == 0.5
    assert reg["l2"].sampling == "log" and reg["l1"].sampling == "log" and reg["batch_norm"].type == "boolean"
    depth = search_space.load("depth_width")
    assert {hp.key for hp in depth.hyperparameters} >= {"num_layers", "hidden_size", "block_channels"}


def test_family_space_activates_only_the_chosen_familys_sub_space():
    space = search_space.load("family")
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("val_CER", "min"), max_trials=60, hyperparameters=hp, seed=1)
    seen, keys = set(), {}
    for i in range(40):
        values = oracle.populate_space(str(i))["values"]
        option, overrides = space.to_overrides(values)
        seen.add(option)
        family = search_space.model_option_family(option)
        if option not in keys:
            keys[option] = set(config.compose("fit", [f"model={option}"]).model) | {"optimizer.learning_rate"}
        known = keys[option]
        # Every value the oracle drew belongs to the chosen model (no other family's sub-space).
        assert set(overrides) <= known, (option, overrides)
        expected = {p.name for p in space.hyperparameters
                    if not p.when or option in dict(p.when)["model"]}
        assert set(values) == expected, (option, values)
        if family == "tds_conv_ctc":
            assert overrides["block_channels"] == [24] * values["tds_blocks"]
    assert len(seen) >= 4


@pytest.mark.parametrize("name", ["families", "families_cpu"])
def test_families_spaces_train_every_family_once_under_grid_search(name, tmp_path):
    from emgtf import models
    from emgtf.tuning.search import _make_oracle

    space = search_space.load(name)
    search_space.check_keys(space, config.compose("fit"))
    options = list(space["model"].values)
    families = sorted(search_space.model_option_family(o) for o in options)
    # families_cpu has SplashNet once, as splashnet_mini at the others' size.
    assert families == sorted(f for f in models.available() if name == "families" or f != "splashnet")
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    settings = {"algorithm": "grid", "max_trials": 20, "max_retries_per_trial": 0,
                "max_consecutive_failed_trials": 3}
    oracle = _make_oracle(settings, seed=0, epochs=1)
    oracle.hyperparameters = hp
    oracle._set_project_dir(str(tmp_path), name)
    drawn = []
    for _ in range(len(options) + 2):
        trial = oracle.create_trial("chief")
        if trial.status != "RUNNING":
            break
        drawn.append(space.to_overrides(trial.hyperparameters.values)[0])
        oracle.update_trial(trial.trial_id, {"val_CER": 50.0})
        oracle.end_trial(trial)
    assert drawn == options  # each once, in the space's order, then the grid is exhausted


def test_families_cpu_sizes_every_family_like_the_cpu_presets():
    from emgtf import models

    space = search_space.load("families_cpu")
    assert search_space.model_option_family("small_tds") == "tds_conv_ctc"  # a preset of a preset
    sizes = {}
    for option in space["model"].values:
        hp = keras_tuner.HyperParameters()
        hp.values["model"] = option  # declared with this value, as a trial that drew it
        space.declare(hp)
        chosen, overrides = space.to_overrides(tune.active_values(hp))
        cfg = config.apply_hp_overrides(config.compose("fit", [f"model={chosen}"]), overrides)
        family, hyperparameters = config.model_spec(cfg)
        assert hyperparameters["spec_augment"] is False
        sizes[option] = models.trainable_parameters(models.build(family, **hyperparameters))
    assert all(600_000 < n < 1_200_000 for n in sizes.values()), sizes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_chief_and_two_workers_share_one_search_on_localhost(data, tmp_path):
    """KerasTuner's chief/worker mode: the chief serves the oracle over gRPC on 127.0.0.1, each
    worker runs the trials it is handed; the chief writes the tables and the best checkpoint."""
    run_dir = tmp_path / "shared"
    argv = [sys.executable, "-m", "emgtf.tune", *tiny(data, run_dir, "tuner.max_trials=2")]
    port = str(_free_port())
    procs, logs = {}, {}

    def start(tuner_id):
        env = dict(os.environ, KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=port,
                   KERASTUNER_TUNER_ID=tuner_id, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
        logs[tuner_id] = tmp_path / f"{tuner_id}.log"
        procs[tuner_id] = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=open(logs[tuner_id], "w"),
                                           stderr=subprocess.STDOUT)

    try:
        # Workers first: once both wait for the oracle, the chief's first two trials go one to each.
        start("worker0")
        start("worker1")
        deadline = time.monotonic() + 400
        while not all("search 'shared'" in logs[w].read_text() for w in ("worker0", "worker1")):
            assert all(p.poll() is None for p in procs.values()), {k: v.read_text()[-2000:] for k, v in logs.items()}
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.5)
        start("chief")
        while any(p.poll() is None for p in procs.values()):
            failed = [k for k, p in procs.items() if p.poll() not in (None, 0)]
            assert not failed, logs[failed[0]].read_text()[-3000:]
            assert time.monotonic() < deadline + 60, {k: v.read_text()[-1500:] for k, v in logs.items()}
            time.sleep(0.5)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    workers = {json.loads(p.read_text())["tuner_id"] for p in (run_dir / "trials").glob("trial_*/worker.json")}
    assert all(p.returncode == 0 for p in procs.values())
    assert workers == {"worker0", "worker1"}
    for w in ("worker0", "worker1"):
        assert f"emgtf.tune: {w} ran 1 trials" in logs[w].read_text()
    table = json.loads((run_dir / "best_trials.json").read_text())
    assert [r["status"] for r in table] == ["COMPLETED", "COMPLETED"]
    assert {r["worker"] for r in table} == {"worker0", "worker1"}
    assert (run_dir / "best.keras").is_file() and (run_dir / "config.yaml").is_file()
    assert "chief serving the oracle on 127.0.0.1" in logs["chief"].read_text()


def test_distributed_settings_are_checked(monkeypatch, data, tmp_path):
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.delenv("KERASTUNER_ORACLE_PORT", raising=False)
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "worker0")
    with pytest.raises(EmgtfError, match="KERASTUNER_ORACLE_PORT is not"):
        distributed.distributed_role()
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    assert distributed.distributed_role() == "worker"
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert distributed.distributed_role() == "chief"
    overrides = [o for o in tiny(data, tmp_path) if not o.startswith("run_dir=")]
    with pytest.raises(EmgtfError, match="distributed search needs run_dir"):
        tune.Search(overrides)
