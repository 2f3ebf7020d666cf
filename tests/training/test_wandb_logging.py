"""Weights & Biases logging (``logger=wandb``) of fit runs and tune trials, offline: what a run
logged is read back from the run's own ``.wandb`` file; failures never stop training.

No test contacts a W&B server: runs are offline, and the failure test points W&B at a closed
port on 127.0.0.1.
"""

import json
import os
import socket
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from tests.helpers import REPO, make_tiny_split, tiny_tcn_overrides

from emgtf import config, training
from emgtf.training import wandb_logging
from emgtf.tuning import search as tune
from emgtf.training.callbacks import RunState

wandb = pytest.importorskip("wandb")
from google.protobuf.message import DecodeError  # noqa: E402
from wandb.proto import wandb_internal_pb2  # noqa: E402

BLOCK = 32768  # the .wandb file is a LevelDB-style log: 32 KiB blocks of framed protobuf records
HEADER = 7  # ":W&B" + magic (2 bytes) + version (1 byte); each record chunk has a 7-byte header too


def read_records(path: Path) -> list:
    """The ``wandb_internal_pb2.Record`` messages of a ``run-*.wandb`` file, in order.

    wandb >= 0.20 no longer ships a Python reader for this file (its Go core writes it), so this
    test helper undoes the framing: each chunk is crc32 (4 bytes), length (2), type (1: full,
    2: first, 3: middle, 4: last), then the bytes of (part of) one record.
    """
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    records, pending, pos = [], b"", HEADER
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pos += 7
        if kind == 0:  # zero-filled rest of the last block
            break
        pending += data[pos:pos + length]
        pos += length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def finished_records(path: Path, timeout: float = 300.0) -> list:
    """The records of a run file once its ``exit`` record is written.

    wandb-core writes the file from its own process and can still be flushing it when
    ``run.finish()`` has returned, so a read right away may see only part of the run.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            records = read_records(path)
        except (AssertionError, DecodeError, struct.error):  # caught mid-write
            records = []
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


class OfflineRun:
    """What one offline run logged: run settings, config, history rows, summary, artifacts."""

    def __init__(self, run_dir: Path):
        files = sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
        assert len(files) == 1, f"expected one offline run in {run_dir}, found {files}"
        self.folder = files[0].parent
        self.history, self.summary, self.artifacts, self.config = [], {}, [], {}
        for record in finished_records(files[0]):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                self.run = record.run
                self.config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
            elif kind == "config":
                self.config.update({i.key: json.loads(i.value_json) for i in record.config.update})
            elif kind == "history":
                self.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
            elif kind == "summary":
                self.summary.update({_key(i): json.loads(i.value_json) for i in record.summary.update})
            elif kind == "artifact":
                self.artifacts.append(record.artifact)

    def table_rows(self, row: dict) -> list:
        """The rows of the sample-decodings table logged in a history row."""
        table = json.loads((self.folder / "files" / row["val/samples/path"]).read_text())
        return [dict(zip(table["columns"], r)) for r in table["data"]]


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """W&B offline, its files in tmp_path, no credentials from the user's home, fresh notices."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_DIR", raising=False)  # runs go to their run folder unless a test sets it
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_split(tmp_path_factory.mktemp("wandb_data"))


def tiny(data, run_dir, *extra):
    return tiny_tcn_overrides(data, run_dir, *extra, logger="wandb", epochs=2)


def check_epochs(run: OfflineRun, epochs: int) -> None:
    rows = [r for r in run.history if "val/CER" in r]
    assert [r["_step"] for r in rows] == list(range(1, epochs + 1))
    for row in rows:
        for key in ("train/loss", "val/loss", "val/CER", "val/IER", "val/DER", "val/SER", "lr"):
            assert isinstance(row[key], (int, float)), (key, row)
        samples = run.table_rows(row)
        assert samples and {"prediction", "target"} <= set(samples[0])
        assert all(isinstance(s["prediction"], str) and isinstance(s["target"], str) for s in samples)
        assert any(s["target"] for s in samples)  # the windows' typed keys
    best = min(rows, key=lambda r: r["val/CER"])
    assert run.summary["best/val_CER"] == pytest.approx(best["val/CER"])
    assert run.summary["best/epoch"] == best["_step"]
    models = [a for a in run.artifacts if a.type == "model"]
    assert len(models) == 1 and "best" in models[0].aliases
    assert {m.path for m in models[0].manifest.contents} == {"best.keras", "config.yaml"}


@pytest.mark.slow
def test_search_trials_are_one_group_with_their_hyperparameters_and_metrics(data, tmp_path, capsys):
    run_dir = tmp_path / "search"
    result = tune.run_search(tiny(data, run_dir, "space=regularization", "tuner.max_trials=2"),
                             log=lambda *a: None)
    err = capsys.readouterr().err
    assert err.count("W&B: logging offline") == 1  # said once, not once per trial
    assert len(result.trials) == 2
    for trial in result.trials:
        run = OfflineRun(trial.run_dir)
        assert run.run.run_group == "search" and run.run.job_type == "trial"
        assert run.run.display_name == f"search/trial_{trial.trial_id}"
        assert run.config["trial"]["hyperparameters"] == pytest.approx(trial.hyperparameters)
        assert run.config["trial"]["id"] == trial.trial_id
        assert run.config["model"]["dropout"] == pytest.approx(trial.hyperparameters["dropout"])
        check_epochs(run, 2)
        assert run.summary["best/val_CER"] == pytest.approx(trial.val_cer)


def test_fit_run_logs_config_epochs_samples_summary_and_checkpoint(data, tmp_path):
    run_dir = tmp_path / "fit"
    result = training.train(config.compose("fit", tiny(data, run_dir)))
    run = OfflineRun(run_dir)
    assert run.run.job_type == "fit" and run.run.display_name == "fit" and not run.run.run_group
    assert run.config["trainer"]["epochs"] == 2 and run.config["model"]["family"] == "tcn"
    check_epochs(run, 2)
    assert run.summary["best/val_CER"] == pytest.approx(result.best_val_cer)
    assert json.loads((run_dir / "wandb.json").read_text())["mode"] == "offline"


@pytest.mark.slow  # trains or starts a process: tens of seconds on 2 cores
def test_wandb_environment_variables_win_over_the_logger_config(data, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    monkeypatch.setenv("WANDB_RUN_GROUP", "env-group")
    cfg = config.compose("fit", tiny(data, tmp_path / "fit", "logger.wandb.group=config-group"))
    settings = wandb_logging.run_settings(cfg, tmp_path / "fit")
    assert settings["dir"] == str(tmp_path / "elsewhere")
    assert settings["project"] == "from-env" and settings["group"] == "env-group"
    monkeypatch.delenv("WANDB_PROJECT")
    monkeypatch.delenv("WANDB_RUN_GROUP")
    run_dir = tmp_path / "fit"
    training.train(config.compose("fit", tiny(data, run_dir)))
    assert not (run_dir / "wandb").exists()
    run = OfflineRun(tmp_path / "elsewhere")
    check_epochs(run, 2)
    assert json.loads((run_dir / "wandb.json").read_text())["dir"].startswith(str(tmp_path / "elsewhere"))


def test_online_without_api_key_runs_offline_and_says_so_once(data, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_MODE")
    cfg = config.compose("fit", tiny(data, tmp_path / "unused", "logger.wandb.mode=online"))
    assert not wandb_logging.has_credentials()
    session = wandb_logging.WandbSession()  # one process's runs, as a search's trials
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        run = session.start_run(cfg, tmp_path / name)
        assert run is not None and run.settings.mode == "offline"
        run.finish()
        assert json.loads((tmp_path / name / "wandb.json").read_text())["mode"] == "offline"
    err = capsys.readouterr().err
    assert err.count("no API key") == 1 and "wandb sync" in err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_unreachable_server_warns_and_training_goes_on(data, tmp_path):
    """``python -m emgtf.fit logger=wandb`` online, with a key but no server (a closed port on
    127.0.0.1): a warning, the run trains on and is kept offline. A fresh process, because wandb
    reads WANDB_BASE_URL once per process."""
    run_dir = tmp_path / "unreachable"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_API_KEY="0" * 40, WANDB_BASE_URL=f"http://127.0.0.1:{_closed_port()}",
               WANDB_INIT_TIMEOUT="1", WANDB_CONFIG_DIR=str(tmp_path / "cfg"), HOME=str(tmp_path / "home"),
               WANDB_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    argv = tiny(data, run_dir, "logger.wandb.mode=online", "trainer.epochs=1")
    done = subprocess.run([sys.executable, "-m", "emgtf.fit", *argv], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    warning = [ln for ln in done.stderr.splitlines() if "W&B could not start online" in ln]
    assert len(warning) == 1 and "127.0.0.1" in warning[0]  # no other server was tried
    assert (run_dir / "best.keras").is_file()
    check_epochs(OfflineRun(run_dir), 1)  # the run was kept, offline


def test_a_wandb_error_while_logging_warns_once_and_stops_only_the_logging(tmp_path):
    run = wandb.init(project="emgtf-test", mode="offline", dir=str(tmp_path))
    logger = wandb_logging.WandbLogger(run, RunState(run_dir=tmp_path))
    run.finish()  # W&B refuses to log to a finished run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logger.on_epoch_end(0, {"loss": 1.0, "val_CER": 50.0})
        logger.on_epoch_end(1, {"loss": 0.5, "val_CER": 40.0})
        logger.on_train_end()
    messages = [str(w.message) for w in caught if issubclass(w.category, wandb_logging.WandbWarning)]
    assert len(messages) == 1 and "W&B logging failed" in messages[0]
    assert logger.failed
    logger.close()


@pytest.mark.slow  # a search in its own process (the 2 logical CPU devices exist only from its start)
def test_search_on_two_devices_logs_each_trial_like_one_device(data, tmp_path):
    run_dir = tmp_path / "search"
    args = tiny_tcn_overrides(data, run_dir, "space=regularization", "tuner.max_trials=2", "trainer.batch_size=2",
                              "trainer.devices=2", logger="wandb", epochs=2)
    env = {**os.environ, "PYTHONPATH": str(REPO), "EMGTF_CONFIG_DIR": str(REPO / "configs"),
           "EMGTF_TUNER_DIR": str(REPO / "tuner")}
    done = subprocess.run([sys.executable, "-m", "emgtf.tune", *args], capture_output=True, text=True,
                          timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("2 devices (mirrored), global batch 4") == 2
    trials = json.loads((run_dir / "best_trials.json").read_text())
    assert [t["status"] for t in trials] == ["COMPLETED", "COMPLETED"]
    for trial in trials:
        trial_dir = Path(trial["run_dir"])
        assert config.load_saved(trial_dir / "config.yaml").trainer.devices == 2
        run = OfflineRun(trial_dir)  # one W&B run per trial, written once (by the chief)
        assert run.run.run_group == "search" and run.run.job_type == "trial"
        check_epochs(run, 2)
        assert run.summary["best/val_CER"] == pytest.approx(trial["val_CER"])
    assert (run_dir / "best.keras").is_file()
