"""Training on several devices: trainer.devices / trainer.strategy (emgtf.training.distribute).

Logical devices and multi-worker collectives must be configured before TensorFlow starts, so every
multi-device run is its own ``python -m emgtf.fit`` process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from emgtf.errors import EmgtfError
from emgtf.training.distribute import check_config, read_cluster, read_hosts
from tests.helpers import REPO, fit_process, make_tiny_split, tiny_tcn_overrides


def trainer(**values):
    return OmegaConf.create({"devices": 1, "strategy": "auto", **values})


def tf_config(ports, kind="worker", index=0, chief=False):
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    if chief:
        cluster = {"chief": [cluster["worker"][0]], "worker": cluster["worker"][1:]}
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})}


def keras_hosts(port, count=2, index=0):
    """Keras' variables for a JAX cluster of ``count`` localhost processes (keras.distribution.initialize)."""
    return {"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"localhost:{port}",
            "KERAS_DISTRIBUTION_NUM_PROCESSES": str(count), "KERAS_DISTRIBUTION_PROCESS_ID": str(index)}


def test_auto_picks_the_engine_from_devices_backend_and_tf_config():
    assert check_config(trainer(), "tensorflow", {}) == "one_device"
    assert check_config(trainer(devices=2), "tensorflow", {}) == "mirrored"
    assert check_config(trainer(devices="auto"), "tensorflow", {}) == "mirrored"
    assert check_config(trainer(devices=2), "jax", {}) == "data_parallel"
    assert check_config(trainer(), "tensorflow", tf_config([1, 2], index=1)) == "multi_worker"
    assert check_config(trainer(), "jax", keras_hosts(1)) == "data_parallel"
    assert check_config(trainer(), "jax", keras_hosts(1, count=1)) == "one_device"


@pytest.mark.parametrize("values, backend, environ, message", [
    ({"strategy": "horovod"}, "tensorflow", {}, "trainer.strategy must be one of auto, one_device"),
    ({"devices": 0}, "tensorflow", {}, "trainer.devices must be an integer >= 1 or auto, got 0"),
    ({"devices": "two"}, "tensorflow", {}, "trainer.devices must be an integer >= 1 or auto"),
    ({"devices": 2, "strategy": "one_device"}, "tensorflow", {}, "trains on one device"),
    ({"strategy": "data_parallel"}, "tensorflow", {}, "runs under the jax backend"),
    ({"strategy": "mirrored"}, "jax", {}, "runs under the tensorflow backend"),
    ({"devices": 2}, "torch", {}, "needs the tensorflow or jax backend"),
    ({"strategy": "multi_worker"}, "tensorflow", {}, "needs TF_CONFIG"),
    ({"strategy": "mirrored"}, "tensorflow", tf_config([1, 2]), "trains on one host"),
    ({}, "tensorflow", {"TF_CONFIG": "{not json"}, "TF_CONFIG is not a JSON object"),
    ({}, "tensorflow", tf_config([1, 2], index=2), "task worker 2 is not in its cluster"),
    ({}, "tensorflow", keras_hosts(1), "cluster of 2 processes, which emgtf trains under the jax backend"),
    ({"strategy": "one_device"}, "jax", keras_hosts(1), "trainer.strategy=one_device; use data_parallel"),
    ({}, "jax", {**keras_hosts(1), **tf_config([1, 2])}, "both TF_CONFIG and KERAS_DISTRIBUTION_"),
    ({}, "jax", {"KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}, "KERAS_DISTRIBUTION_JOB_ADDRESSES, "
     "KERAS_DISTRIBUTION_PROCESS_ID not set"),
    ({}, "jax", keras_hosts(1, index=2), "PROCESS_ID=2 is not a process of .*NUM_PROCESSES=2"),
    ({}, "jax", {**keras_hosts(1), "KERAS_DISTRIBUTION_NUM_PROCESSES": "two"}, "must be integers"),
    ({}, "jax", {**keras_hosts(1, count=3), "KERAS_DISTRIBUTION_JOB_ADDRESSES": "a:1,b:1"},
     "lists 2 hosts, KERAS_DISTRIBUTION_NUM_PROCESSES is 3"),
])
def test_bad_settings_are_one_line_errors(values, backend, environ, message):
    with pytest.raises(EmgtfError, match=message) as e:
        check_config(trainer(**values), backend, environ)
    assert "\n" not in str(e.value)


def test_the_chief_is_tf_configs_chief_else_worker_0():
    assert read_cluster({}) is None
    assert read_cluster(tf_config([1])) is None  # one task: nothing to distribute
    first, second = read_cluster(tf_config([1, 2], index=0)), read_cluster(tf_config([1, 2], index=1))
    assert (first.chief, first.pipeline, second.chief, second.pipeline) == (True, 0, False, 1)
    chief = read_cluster(tf_config([1, 2, 3], "chief", 0, chief=True))
    worker = read_cluster(tf_config([1, 2, 3], "worker", 0, chief=True))
    assert (chief.chief, chief.pipeline, worker.chief, worker.pipeline, worker.tasks) == (True, 0, False, 1, 3)
    # A JAX cluster: process 0 is the coordinator and the chief.
    first, second = read_hosts(keras_hosts(1, index=0)), read_hosts(keras_hosts(1, index=1))
    assert (first.chief, first.pipeline, second.chief, second.pipeline, second.tasks) == (True, 0, False, 1, 2)
    assert read_hosts({}) is None and read_hosts(keras_hosts(1, count=1)) is None


def test_shards_of_the_windows_are_disjoint_equal_and_follow_one_order(tmp_path):
    from emgtf.data import make_dataset
    from tests.helpers import make_session_file

    path, _ = make_session_file(tmp_path / "s.hdf5", num_samples=22000)  # 11 windows of 2000

    def starts(shard):
        ds = make_dataset([path], window_length=2000, padding=(0, 0), batch_size=1, shuffle=True,
                          jitter=True, seed=3, shard=shard)
        return [int(b["start"][0]) for b in ds]

    every = starts(None)
    shares = [starts((i, 3)) for i in range(3)]
    assert [len(s) for s in shares] == [3, 3, 3]  # 11 // 3 each; 2 windows of this pass left out
    assert sorted(sum(shares, [])) == sorted(every[:9])
    assert [s[k] for k in range(3) for s in shares] == every[:9]  # every 3rd window of one order
    with pytest.raises(EmgtfError, match="shard needs a seed"):
        make_dataset([path], window_length=2000, batch_size=1, shard=(0, 2))
    with pytest.raises(EmgtfError, match="0 <= index < count"):
        make_dataset([path], window_length=2000, batch_size=1, seed=0, shard=(2, 2))


@pytest.mark.slow  # trains or starts a process: tens of seconds on 2 cores
def test_more_devices_than_the_machine_has_is_one_line_before_any_folder(tmp_path):
    data = make_tiny_split(tmp_path / "data")
    run_dir = tmp_path / "run"
    n = (os.cpu_count() or 1) + 1
    result = fit_process(tiny_tcn_overrides(data, run_dir, f"trainer.devices={n}"), run_dir, timeout=600)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"emgtf.fit: error: trainer.devices={n}: this machine has no GPU and {n - 1} CPU cores "
        "(on CPU, trainer.devices splits the cores into logical devices)")
    assert not run_dir.exists()


# One step per epoch: 4 windows, a global batch of 4. SpecAugment off and per-example
# normalisation (the rolling norm, and no batch norm in the TCN, which has it by default now), so
# that both runs compute the same function of the same windows (batch statistics are per device,
# see emgtf.training.distribute); Adam's epsilon 1 keeps its first steps from amplifying float
# rounding of near-zero gradients into +-lr.
SAME_STEPS = ("model.norm=rolling", "model.batch_norm=false", "trainer.jitter=false",
              "optimizer.epsilon=1.0", "trainer.epochs=2")


def weights(path):
    from emgtf.inference.checkpoints import load_checkpoint

    return [np.asarray(w) for w in load_checkpoint(path, "tcn").get_weights()]


def assert_same_training(one: Path, two: Path):
    from emgtf.run_folder import read_history

    h1, h2 = read_history(one / "history.csv"), read_history(two / "history.csv")
    for key in ("train/loss", "val/loss", "val/CER"):
        np.testing.assert_allclose([r[key] for r in h2], [r[key] for r in h1], rtol=1e-5)
    for a, b in zip(weights(two / "last.keras"), weights(one / "last.keras")):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def no_test_split(root):
    from emgtf.data.splits import write_split_file

    return root, write_split_file(root / "no_test.yaml", name="no_test", train=["train"], val=["val"], test=[])


@pytest.mark.slow
def test_mirrored_on_two_devices_trains_like_one_device_on_the_same_global_batch(tmp_path):
    data = make_tiny_split(tmp_path / "data")
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = fit_process(tiny_tcn_overrides(data, one, *SAME_STEPS, "trainer.batch_size=4"), one)
    r2 = fit_process(tiny_tcn_overrides(data, two, *SAME_STEPS, "trainer.batch_size=2", "trainer.devices=2"), two)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr[-2000:] + r2.stderr[-2000:]
    assert "2 devices (mirrored), global batch 4" in r2.stdout
    assert_same_training(one, two)
    # One normal run folder, test report included, and resume continues it on two devices.
    assert {p.name for p in two.iterdir()} >= {"config.yaml", "history.csv", "best.keras", "last.keras",
                                              "last.json", "best.test.greedy.eval.json"}
    assert OmegaConf.load(two / "config.yaml").trainer.devices == 2
    r3 = fit_process(["resume=true", f"run_dir={two}", "trainer.epochs=3"], two)
    assert r3.returncode == 0, r3.stderr[-2000:]
    from emgtf.run_folder import read_history

    assert [r["epoch"] for r in read_history(two / "history.csv")] == [1, 2, 3]


@pytest.mark.slow
def test_data_parallel_under_jax_on_two_cpu_devices_trains_like_one_device(tmp_path):
    pytest.importorskip("jax")
    # No test sessions: the whole-session evaluation after training (emgtf.evaluate) is not
    # what is compared here.
    data = no_test_split(make_tiny_split(tmp_path / "data")[0])
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = fit_process(tiny_tcn_overrides(data, one, *SAME_STEPS, "trainer.batch_size=4"), one, env)
    r2 = fit_process(tiny_tcn_overrides(data, two, *SAME_STEPS, "trainer.batch_size=2", "trainer.devices=2"), two, env)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr[-2000:] + r2.stderr[-2000:]
    assert "2 devices (data_parallel), global batch 4" in r2.stdout
    assert_same_training(one, two)


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="Keras 3 fit cannot run MultiWorkerMirroredStrategy: "
                   "keras-team/keras#20585, tensorflow/tensorflow#72388")
def test_two_localhost_workers_train_one_run_folder(tmp_path):
    data = make_tiny_split(tmp_path / "data", num_samples=16000)
    run_dir = tmp_path / "run"
    ports = free_ports(2)
    env = {**os.environ, "PYTHONPATH": str(REPO), "EMGTF_CONFIG_DIR": str(REPO / "configs")}
    args = [sys.executable, "-m", "emgtf.fit",
            *tiny_tcn_overrides(data, run_dir, "trainer.batch_size=2", "trainer.strategy=multi_worker")]
    workers = [subprocess.Popen(args, env={**env, **tf_config(ports, index=i)}, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-1500:] for _, err in outputs]
    assert "host 1 of 2 (the chief writes the run folder)" in outputs[1][0]
    assert {"config.yaml", "history.csv", "best.keras", "last.keras"} <= {p.name for p in run_dir.iterdir()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "run"]


def jax_hosts(args, cwd, count=2, per_host=None):
    """``python -m emgtf.fit args`` (plus ``per_host[i]``) as the ``count`` localhost processes of
    one JAX cluster."""
    port = free_ports(1)[0]
    env = {**os.environ, "PYTHONPATH": str(REPO), "EMGTF_CONFIG_DIR": str(REPO / "configs"), "KERAS_BACKEND": "jax"}
    extra = per_host or [[]] * count
    return [subprocess.Popen([sys.executable, "-m", "emgtf.fit", *args, *extra[i]],
                             env={**env, **keras_hosts(port, count, i)},
                             cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(count)]


@pytest.mark.slow
def test_two_jax_hosts_train_like_one_process_and_write_one_run_folder(tmp_path):
    pytest.importorskip("jax")
    data = make_tiny_split(tmp_path / "data", num_samples=16000)  # 8 training windows: 2 steps of 4
    one, run_dir = tmp_path / "one", tmp_path / "run"
    r1 = fit_process(tiny_tcn_overrides(data, one, *SAME_STEPS, "trainer.batch_size=4"), one, {"KERAS_BACKEND": "jax"})
    assert r1.returncode == 0, r1.stderr[-2000:]
    hosts = jax_hosts(tiny_tcn_overrides(data, run_dir, *SAME_STEPS, "trainer.batch_size=2"), tmp_path)
    outputs = [h.communicate(timeout=900) for h in hosts]
    assert [h.returncode for h in hosts] == [0, 0], [err[-2000:] for _, err in outputs]
    assert "2 devices (data_parallel), global batch 4" in outputs[0][0]
    assert "host 1 of 2 (the chief writes the run folder)" in outputs[1][0]
    assert_same_training(one, run_dir)
    # The chief evaluates on test after the hosts have left the cluster; nothing else is written.
    assert {"config.yaml", "history.csv", "best.keras", "last.keras", "last.json",
            "best.test.greedy.eval.json"} <= {p.name for p in run_dir.iterdir()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "one", "run"]


@pytest.mark.slow
def test_a_jax_host_that_dies_stops_the_other_with_one_line_and_resume_continues(tmp_path):
    pytest.importorskip("jax")
    from emgtf.files import read_json
    from emgtf.run_folder import read_history

    data = no_test_split(make_tiny_split(tmp_path / "data", num_samples=16000)[0])
    run_dir = tmp_path / "run"
    chief, worker = jax_hosts(tiny_tcn_overrides(data, run_dir, "trainer.batch_size=2", epochs=50), tmp_path)
    deadline = time.monotonic() + 600
    while not (run_dir / "last.json").is_file():  # the chief has checkpointed an epoch
        assert chief.poll() is None and worker.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    worker.kill()
    worker.wait()
    _, err = chief.communicate(timeout=300)  # it does not wait for the lost host
    assert chief.returncode == 2, err[-2000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith("emgtf.fit: error: host 0 of 2: host 1 of the cluster stopped during training ("), line
    assert line.endswith("the chief's last checkpoint is kept: start every host again with resume=true")
    epoch = read_json(run_dir / "last.json")["epoch"]
    assert 1 <= epoch < 50
    weights(run_dir / "last.keras")  # a whole checkpoint
    hosts = jax_hosts(["resume=true", f"run_dir={run_dir}", f"trainer.epochs={epoch + 1}"], tmp_path)
    outputs = [h.communicate(timeout=900) for h in hosts]
    assert [h.returncode for h in hosts] == [0, 0], [err[-2000:] for _, err in outputs]
    assert [r["epoch"] for r in read_history(run_dir / "history.csv")] == list(range(1, epoch + 2))


@pytest.mark.slow
def test_jax_hosts_started_with_different_configs_stop_with_one_line_and_no_run_folder(tmp_path):
    pytest.importorskip("jax")
    data = no_test_split(make_tiny_split(tmp_path / "data")[0])
    run_dir = tmp_path / "run"
    hosts = jax_hosts(tiny_tcn_overrides(data, run_dir, "trainer.batch_size=2"), tmp_path,
                      per_host=[["seed=1"], ["seed=2"]])
    outputs = [h.communicate(timeout=600) for h in hosts]
    assert [h.returncode for h in hosts] == [2, 2], [err[-2000:] for _, err in outputs]
    lines = [err.strip().splitlines()[-1] for _, err in outputs]
    assert lines == [f"emgtf.fit: error: host {other} of the cluster was started with a different config than "
                     f"host {me}; start every host with the same overrides" for me, other in ((0, 1), (1, 0))]
    assert not run_dir.exists()
