"""Bad inputs of every kind end in one line naming what is wrong, and overwrite nothing (#16).

Damaged and foreign files, impossible configs, NaN checkpoints, overflowing EMG, a full disk
(simulated with an OSError; a real full tmpfs where this runs as root) and a second process on a
run folder.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from emgtf import config
from emgtf.console import console_log
from emgtf.errors import EmgtfError, SessionFileError
from tests.helpers import (REPO, T0, make_session_file, make_tiny_split, run_command, sigint_as_default,
                           tiny_tcn_overrides)

TINY_TCN = dict(mlp_features=[16], hidden_size=8, num_layers=1, spec_augment=False)


def run_cli(command: str, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", f"emgtf.{command}", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def assert_one_line(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_split(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def nan_checkpoint(tmp_path_factory):
    """A real tiny TCN checkpoint whose weights are all NaN."""
    from emgtf import models

    model = models.build("tcn", **TINY_TCN)
    model.set_weights([np.full(w.shape, np.nan, w.dtype) if w.dtype.kind == "f" else w
                       for w in model.get_weights()])
    path = tmp_path_factory.mktemp("nan") / "best.keras"
    model.save(path)
    return path


def fit_cfg(data, run_dir, *extra):
    return config.compose("fit", tiny_tcn_overrides(data, run_dir, *extra))


# --- the run-folder lock ---------------------------------------------------------------------


@pytest.mark.slow  # trains or starts a process: tens of seconds on 2 cores
def test_second_fit_on_a_locked_run_dir_stops_with_one_line(data, tmp_path):
    from emgtf.training.run_lock import LOCK_FILE, RunLock

    run = tmp_path / "run"
    with RunLock.acquire(run):  # this process plays the running fit
        proc = run_cli("fit", *tiny_tcn_overrides(data, run))
        assert_one_line(proc, f"pid {os.getpid()}", socket.gethostname(), "in use")
        assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]  # the other fit wrote nothing
    assert not run.exists() or not any(run.iterdir())


def tune_overrides(data, run_dir):
    return tiny_tcn_overrides(data, run_dir, "space=regularization", "tuner.max_trials=100")


def test_second_tune_on_a_locked_folder_stops_with_one_line(data, tmp_path):
    from emgtf.training.run_lock import LOCK_FILE, RunLock

    run = tmp_path / "search"
    with RunLock.acquire(run):  # this process plays the running search
        proc = run_cli("tune", *tune_overrides(data, run))
        assert_one_line(proc, f"pid {os.getpid()}", socket.gethostname(), "in use")
        assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]


@pytest.mark.slow  # a real search starts and trains; about 20 s
def test_two_tunes_on_one_folder(data, tmp_path):
    """A real search holds its folder: a second ``python -m emgtf.tune`` there stops at once naming
    it, and leaves its files alone; Ctrl-C ends the first, which releases the lock."""
    import signal
    import time

    from emgtf.training.run_lock import LOCK_FILE, read_holder

    run = tmp_path / "search"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(tmp_path / "first.err", "w") as err:
        first = subprocess.Popen([sys.executable, "-m", "emgtf.tune", *tune_overrides(data, run)],
                                 stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=REPO,
                                 preexec_fn=sigint_as_default)
    try:
        deadline = time.monotonic() + 600
        while read_holder(run / LOCK_FILE).get("pid") != first.pid or not (run / "search.json").is_file():
            assert first.poll() is None, (tmp_path / "first.err").read_text()[-2000:]
            assert time.monotonic() < deadline, "the first search never took its lock"
            time.sleep(0.2)
        before = {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file() and p.name != LOCK_FILE}
        second = run_cli("tune", *tune_overrides(data, run))
        assert_one_line(second, f"pid {first.pid}", socket.gethostname(), "in use", str(run))
        assert first.poll() is None  # still searching, its files untouched
        for name, mtime in before.items():
            assert (run / name).stat().st_mtime_ns == mtime, name
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=300)
    assert not (run / LOCK_FILE).exists()  # released on Ctrl-C


def test_stale_lock_is_taken_over_with_a_warning(tmp_path):
    from emgtf.training.run_lock import LOCK_FILE, RunLock, RunLocked, read_holder

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with pytest.warns(UserWarning, match=f"pid {dead.pid}.*no longer running"):
        lock = RunLock.acquire(tmp_path)
    assert read_holder(tmp_path / LOCK_FILE)["pid"] == os.getpid()
    # A live holder on another host is respected, whatever its pid.
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": "elsewhere"}))
    with pytest.raises(RunLocked, match="in use by pid .* on host elsewhere"):
        RunLock.acquire(tmp_path)


def test_a_run_that_died_before_its_first_checkpoint_restarts(tmp_path):
    from emgtf.training.run_dir import claim_run_dir

    (tmp_path / "config.yaml").write_text("seed: 0\n")
    said = []
    claim = claim_run_dir(tmp_path, resume=True, family="tcn", log=said.append)
    assert not claim.resume and "afresh" in said[0]
    claim.release()
    claim = claim_run_dir(tmp_path, resume=False, family="tcn", log=said.append)
    claim.release()
    (tmp_path / "history.csv").write_text("epoch\n1\n")  # a run with results is never reused
    with pytest.raises(EmgtfError, match="is not empty"):
        claim_run_dir(tmp_path, resume=False, family="tcn")


class Killed(Exception):
    """Stands for the process dying in its first epoch."""


@pytest.mark.slow  # trains or starts a process: tens of seconds on 2 cores
def test_resume_of_a_run_that_died_before_its_first_checkpoint_starts_from_its_checkpoint(data, tmp_path, capfd):
    import keras

    from emgtf import models, training
    from emgtf.cli import fit

    keras.utils.set_random_seed(1)
    start = models.build("tcn", **TINY_TCN)
    start.set_weights([w + 0.25 if w.dtype.kind == "f" else w for w in start.get_weights()])
    start.save(tmp_path / "start.keras")
    run = tmp_path / "run"

    class Die(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            raise Killed

    with pytest.raises(Killed):
        training.train(fit_cfg(data, run, f"checkpoint={tmp_path / 'start.keras'}"), extra_callbacks=[Die()])
    assert not (run / "last.keras").exists() and (run / "config.yaml").is_file()

    first_epoch = []

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            first_epoch.extend(self.model.get_weights())

    capfd.readouterr()
    training.train(fit.load_config(["resume=true", f"run_dir={run}"]), extra_callbacks=[Record()],
                   log=console_log("emgtf.fit"))
    err = capfd.readouterr().err
    assert "stopped before its first checkpoint; starting it afresh" in err
    assert f"starting from the weights of checkpoint {tmp_path / 'start.keras'}" in err
    assert len(first_epoch) == len(start.get_weights())
    for got, want in zip(first_epoch, start.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert (run / "last.keras").is_file()


# --- non-finite log-probabilities and overflowing EMG ----------------------------------------


def test_nan_checkpoint_stops_evaluate_transcribe_and_export(nan_checkpoint, data, tmp_path):
    from emgtf.export import export_checkpoint
    from emgtf.inference.evaluation import evaluate_checkpoint
    from emgtf.inference.runners import load_runner
    from emgtf.inference.transcription import transcribe

    root, split = data
    with pytest.raises(EmgtfError, match=rf"checkpoint {nan_checkpoint}: non-finite .*session test.*frame 0"):
        evaluate_checkpoint(nan_checkpoint, root=root, split=split, output=tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()
    with pytest.raises(EmgtfError, match=rf"{nan_checkpoint}: non-finite .*test.hdf5, frame 0"):
        transcribe(load_runner(nan_checkpoint), root / "test.hdf5")
    with pytest.raises(EmgtfError, match=rf"export check: checkpoint {nan_checkpoint}: non-finite"):
        export_checkpoint(nan_checkpoint, tmp_path / "out", "keras")
    assert not (tmp_path / "out").exists()


def test_nan_model_stops_validation(nan_checkpoint, data):
    from emgtf.data import make_dataset
    from emgtf.inference.checkpoints import load_checkpoint
    from emgtf.inference.evaluation import validate
    from emgtf.models.ctc import CTCLoss

    root, _ = data
    val = make_dataset([str(root / "val.hdf5")], window_length=2000, padding=(200, 100), batch_size=8)
    with pytest.raises(EmgtfError, match="epoch 3: non-finite .*session val window at sample 0, frame 0"):
        validate(load_checkpoint(nan_checkpoint), val, CTCLoss(), source="epoch 3")


def test_emg_that_overflows_the_spectrogram_is_a_data_error(tmp_path):
    from emgtf import models
    from emgtf.decoding import GreedyDecoder
    from emgtf.inference.evaluation import evaluate_model
    from emgtf.inference.runners import keras_runner
    from emgtf.inference.transcription import transcribe

    emg = np.random.default_rng(0).normal(0, 2.5, (6000, 2, 16)).astype(np.float32)
    emg[4321, 1, 5] = 3e38
    path, _ = make_session_file(tmp_path / "loud.hdf5", num_samples=6000, emg=emg)
    model = models.build("tcn", **TINY_TCN)
    with pytest.raises(EmgtfError, match=r"loud.hdf5: EMG value 3e\+38 at sample 4321 .*overflow"):
        evaluate_model(model, [path], GreedyDecoder(), log=None)
    with pytest.raises(SessionFileError, match=r"loud.hdf5: EMG value 3e\+38 at sample 4321 .*overflow"):
        transcribe(keras_runner(model), path)


def test_sessions_shorter_than_the_receptive_field_are_skipped(tmp_path):
    from emgtf import models
    from emgtf.decoding import GreedyDecoder
    from emgtf.inference.evaluation import evaluate_model

    short, _ = make_session_file(tmp_path / "short.hdf5", num_samples=40)
    long, _ = make_session_file(tmp_path / "long.hdf5", num_samples=4000)
    with pytest.warns(UserWarning, match="session short: 40 samples .* skipped"):
        report = evaluate_model(models.build("tcn", **TINY_TCN), [short, long], GreedyDecoder(), log=None)
    assert [s["session"] for s in report["sessions"]] == ["long"]


# --- keystrokes outside the recording ------------------------------------------------------------


def test_keystrokes_outside_the_recording(tmp_path):
    from emgtf.data import make_dataset
    from emgtf.data.session import check_scored_sessions

    late = [{"key": "a", "start": T0 + 100.0, "end": T0 + 100.1}]
    some, _ = make_session_file(tmp_path / "some.hdf5", keystrokes=[
        {"key": "b", "start": T0 + 1.0, "end": T0 + 1.1}, *late, *late])
    with pytest.warns(UserWarning, match="session some: 2 keystroke.s. lie outside"):
        make_dataset([str(some)], window_length=2000, batch_size=2)
    check_scored_sessions([some], "val")  # one key inside: fine
    none, _ = make_session_file(tmp_path / "none.hdf5", keystrokes=late)
    with pytest.raises(SessionFileError, match="none.hdf5: none of its 1 keystrokes .* test session"):
        check_scored_sessions([none], "test")


# --- config values ---------------------------------------------------------------------------


@pytest.mark.parametrize("override, message", [
    ("optimizer.learning_rate=abc", "optimizer.learning_rate must be a number > 0, got 'abc'"),
    ("optimizer.learning_rate=-1", "optimizer.learning_rate must be a number > 0, got -1"),
    ("optimizer.beta_1=1.0", r"optimizer.beta_1 must be a number in \[0, 1\), got 1.0"),
    ("optimizer.beta_2=-0.1", "optimizer.beta_2 must be a number in"),
    ("optimizer.clipnorm=0", "optimizer.clipnorm must be a number > 0 or null, got 0"),
    ("schedule.warmup_fraction=1.5", r"schedule.warmup_fraction must be a number in \[0, 1\]"),
    ("trainer.padding=[1]", "trainer.padding must be two integers"),
    ("trainer.padding=[1,a]", "trainer.padding must be two integers"),
    ("trainer.jit_compile=yes", "trainer.jit_compile must be true, false or auto, got 'yes'"),
])
def test_config_values_are_checked_before_anything_is_written(data, tmp_path, override, message):
    from emgtf import training

    with pytest.raises(EmgtfError, match=message):
        training.train(fit_cfg(data, tmp_path / "run", override))
    assert not (tmp_path / "run").exists()


def test_unknown_added_keys_are_refused():
    with pytest.raises(EmgtfError, match="unknown config key 'trainer.foo'"):
        config.compose("fit", ["+trainer.foo=1"])
    config.compose("fit", ["+trainer.stride=100"])  # adding a key that exists is harmless


def test_force_add_overrides_behave_as_hydra_documents(data, tmp_path):
    """``++key=value``: override the key if it exists, else add it (Hydra's force-add). Adding is
    refused as for ``+key``, except model.* and decoder.* keys, which the model family refuses."""
    from emgtf import training
    from emgtf.cli import fit

    cfg = config.compose("fit", ["++trainer.epochs=3", "++seed=7"])
    assert cfg.trainer.epochs == 3 and cfg.seed == 7
    for override, key in [("++trainer.foo=1", "trainer.foo"), ("++nothing=1", "nothing")]:
        with pytest.raises(EmgtfError, match=f"unknown config key '{key}' .*emgtf reads no such key"):
            config.compose("fit", [override])
    with pytest.raises(EmgtfError, match="unknown hyperparameter 'foo'"):
        training.train(fit_cfg(data, tmp_path / "run", "++model.foo=1"))
    assert not (tmp_path / "run").exists()

    # On a saved run's config (resume=true ...) the same rules.
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "config.yaml").write_text(config.to_yaml(fit_cfg(data, saved)))
    resumed = fit.load_config(["resume=true", f"run_dir={saved}", "++trainer.epochs=5", "++model.foo=1"])
    assert resumed.trainer.epochs == 5 and resumed.model.foo == 1
    with pytest.raises(EmgtfError, match="unknown config key 'trainer.foo'"):
        fit.load_config(["resume=true", f"run_dir={saved}", "++trainer.foo=1"])


@pytest.mark.parametrize("override, family", [("model.kernel_width=500", "tds_conv_ctc"),
                                              ("model.n_fft=100000", "tcn")])
def test_model_sizes_must_fit_the_window(data, tmp_path, override, family):
    from emgtf import training

    extra = [override] if family == "tcn" else ["model=tds_conv_ctc", "model.mlp_features=[16]",
                                                "model.block_channels=[4]", override]
    overrides = tiny_tcn_overrides(data, tmp_path / "run", *extra)
    if family != "tcn":
        overrides = [o for o in overrides if not o.startswith(("model.hidden_size", "model.num_layers"))]
    with pytest.raises(EmgtfError, match=r"emits no frame .* set trainer.window_length >= \d+"):
        training.train(config.compose("fit", overrides))
    assert not (tmp_path / "run").exists()


def test_resume_with_a_damaged_or_foreign_config(tmp_path):
    from emgtf.cli import fit

    (tmp_path / "config.yaml").write_text("space: family\ntuner: {max_trials: 3}\n")  # a tune.yaml
    with pytest.raises(EmgtfError, match="config.yaml: not an emgtf.fit run config"):
        fit.load_config(["resume=true", f"run_dir={tmp_path}"])
    (tmp_path / "config.yaml").write_text("model: [unclosed\n")
    with pytest.raises(EmgtfError, match="config.yaml: not a readable config"):
        fit.load_config(["resume=true", f"run_dir={tmp_path}"])


def test_cli_bad_config_value_is_one_line(data, tmp_path, capsys):
    proc = run_command(capsys, "fit", *tiny_tcn_overrides(data, tmp_path / "run", "optimizer.learning_rate=abc"))
    assert_one_line(proc, "optimizer.learning_rate")
    assert not (tmp_path / "run").exists()


# --- session-file attributes -----------------------------------------------------------------


def test_session_attribute_types(tmp_path):
    from emgtf.data import EMGSession

    path, _ = make_session_file(tmp_path / "s.hdf5", num_samples=100)
    with h5py.File(path, "a") as f:
        f["emg2qwerty"].attrs["duration_mins"] = "abc"
    with pytest.raises(SessionFileError, match="'duration_mins' must be a number, got 'abc'"):
        EMGSession(path)

    table = np.zeros(10, dtype=[("time", "S20"), ("emg_left", "f4", (16,)), ("emg_right", "f4", (16,))])
    strings = tmp_path / "strings.hdf5"
    with h5py.File(strings, "w") as f:
        g = f.create_group("emg2qwerty")
        g.create_dataset("timeseries", data=table)
        g.attrs["keystrokes"], g.attrs["prompts"] = "[]", "[]"
    with pytest.raises(SessionFileError, match="field 'time' must be numeric"):
        EMGSession(strings)

    air, _ = make_session_file(tmp_path / "air.hdf5", num_samples=100)
    with h5py.File(air, "a") as f:
        f["emg2qwerty"].attrs["condition"] = "in_the_air"
    with pytest.warns(UserWarning, match="condition is 'in_the_air'"):
        EMGSession(air).close()


# --- SavedModel inputs -------------------------------------------------------------------------


def test_saved_model_signatures_check_their_inputs(tmp_path):
    import tensorflow as tf

    from emgtf import models
    from emgtf.export import export_model

    export_model(models.build("tcn", **TINY_TCN), tmp_path / "sm", "saved_model", verify=False)
    with_lengths = tf.saved_model.load(str(tmp_path / "sm")).signatures["with_lengths"]
    emg = tf.zeros([2, 800, 2, 16])
    with pytest.raises(tf.errors.InvalidArgumentError, match="one length per element of the emg batch"):
        with_lengths(emg=emg, emg_lengths=tf.constant([800], tf.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most the samples of emg"):
        with_lengths(emg=emg, emg_lengths=tf.constant([800, 801], tf.int32))
    out = with_lengths(emg=emg, emg_lengths=tf.constant([800, 400], tf.int32))
    assert out["emission_lengths"].shape == (2,)
    from emgtf.inference.runners import load_runner

    with pytest.raises(EmgtfError, match="sm: emg_lengths must have one length per element of the emg batch"):
        load_runner(tmp_path / "sm")(np.zeros((2, 800, 2, 16), np.float32), np.array([800]))


# --- a full disk -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(data, tmp_path_factory):
    """A finished one-epoch run folder (copy it before changing it)."""
    from emgtf import training

    run = tmp_path_factory.mktemp("finished") / "run"
    training.train(fit_cfg(data, run))
    return run


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(data, finished_run, tmp_path, monkeypatch):
    import shutil

    import keras

    from emgtf import training

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}

    def full_disk(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"partial")  # a write that got some way
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", full_disk)
    with pytest.raises(EmgtfError, match=r"last.keras: cannot write it \(No space left on device\)"):
        training.train(fit_cfg(data, run, "resume=true", "trainer.epochs=2"))
    assert (run / "last.keras").read_bytes() == before["last.keras"]
    assert (run / "best.keras").read_bytes() == before["best.keras"]
    assert not [p.name for p in run.iterdir() if p.name.startswith(".") and "tmp" in p.name]
    assert not (run / ".emgtf.lock").exists()  # released on the error


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs at ``tmp_path/disk``, unmounted afterwards; skipped where mounting is not
    permitted (not root, a container without CAP_SYS_ADMIN)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no mount command here; the simulated full disk above stands in")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode}); "
                    "the simulated full disk above stands in")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True, timeout=30)


def fill(disk: Path, leave: int) -> None:
    """Fills ``disk`` until only about ``leave`` bytes (whole pages) are free."""
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    stat = os.statvfs(disk)
    assert stat.f_bavail * stat.f_frsize <= leave + stat.f_frsize


def test_real_full_disk_while_checkpointing(data, finished_run, small_disk):
    """A real full file system (tmpfs): the checkpoint write fails with one line, its temporary file
    goes, and the previous epoch's checkpoints are intact."""
    import shutil

    from emgtf import training

    run = small_disk / "run"
    shutil.copytree(finished_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    checkpoint = len(before["last.keras"])
    # Room for the small files an epoch writes before its checkpoint (lock, config.yaml and
    # history.csv, each beside its old copy first), not for the checkpoint itself.
    leave = 8 * 4096
    assert checkpoint > 2 * leave
    fill(small_disk, leave)
    with pytest.raises(EmgtfError) as raised:
        training.train(fit_cfg(data, run, "resume=true", "trainer.epochs=2"))
    message = str(raised.value)
    assert message == f"{run / 'last.keras'}: cannot write it (No space left on device); the previous version, if any, is intact"
    assert (run / "last.keras").read_bytes() == before["last.keras"]
    assert (run / "best.keras").read_bytes() == before["best.keras"]
    assert (run / "last.json").read_bytes() == before["last.json"]
    assert sorted(p.name for p in run.iterdir()) == sorted(before)  # no temporary file, no lock


def test_real_full_disk_while_exporting(data, small_disk, tmp_path, capsys):
    """``python -m emgtf.export`` onto a full file system: one line naming the export, and no
    export folder (finished or partial) left behind."""
    from emgtf import models
    from emgtf.cli import run
    from emgtf.cli.export import main

    checkpoint = tmp_path / "best.keras"
    models.build("tcn", **TINY_TCN).save(checkpoint)
    fill(small_disk, 4096)
    out = small_disk / "exports" / "tcn"
    for fmt in ("keras", "saved_model"):
        code = run(main, "emgtf.export", [f"checkpoint={checkpoint}", f"out={out}", f"format={fmt}"])
        err = capsys.readouterr().err
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        assert lines[0].startswith(f"emgtf.export: error: {out}") and "No space left on device" in lines[0], err
        assert not out.exists()
        assert sorted(p.name for p in small_disk.rglob("*")) == ["exports", "filler"], fmt


def test_report_write_error_names_the_file(tmp_path, monkeypatch):
    from emgtf import files

    target = tmp_path / "report.json"
    target.write_text("old\n")

    def full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(EmgtfError, match="report.json: cannot write it .No space left on device"):
        files.write_json(target, {"a": 1})
    monkeypatch.undo()
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_nan_models_stop_the_stream(nan_checkpoint, tmp_path):
    from emgtf import models
    from emgtf.inference.streaming import StreamingDecoder

    # A TDS with NaN weights takes the incremental step; the NaN TCN the windowed re-run.
    tds = models.build("tds_conv_ctc", mlp_features=[16], block_channels=[4, 8], kernel_width=4)
    tds.set_weights([np.full(w.shape, np.nan, w.dtype) for w in tds.get_weights()])
    tds.save(tmp_path / "nan_tds.keras")
    emg = np.zeros((4000, 2, 16), np.float32)
    for path in (nan_checkpoint, tmp_path / "nan_tds.keras"):
        streamer = StreamingDecoder.load(path)
        with pytest.raises(EmgtfError, match=rf"{path}: non-finite .*frame 0"):
            for start in range(0, len(emg), 80):
                streamer.push(emg[start : start + 80])
            streamer.finish()
