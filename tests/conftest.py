"""Shared test helpers: small real session files written with emgtf's own writer."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import pytest

from emgtf.data import write_session

T0 = 1_622_765_527.0  # a unix time in the range of the real sessions


def make_session_file(
    path,
    *,
    num_samples: int = 8000,
    keystrokes: list[dict] | None = None,
    prompts: list[dict] | None = None,
    seed: int = 0,
    field_order=("emg_right", "time", "emg_left"),
    session_name: str | None = None,
    user: str = "test_user",
    emg: np.ndarray | None = None,
):
    """Writes a session of white noise (std 2.5) sampled at 2 kHz from T0; returns (path, time).

    ``emg`` (num_samples, 2, 16) replaces the noise when given.
    """
    rng = np.random.default_rng(seed)
    time = T0 + np.arange(num_samples) / 2000.0
    if emg is None:
        emg = rng.normal(0.0, 2.5, size=(num_samples, 2, 16)).astype(np.float32)
    if keystrokes is None:
        keystrokes = [
            {"key": k, "start": float(time[i]), "end": float(time[min(i + 100, num_samples - 1)])}
            for k, i in zip("hello", range(500, num_samples, max(1, num_samples // 6)))
        ]
    if prompts is None:
        prompts = [{"name": "text_prompt", "start": float(time[0]), "end": float(time[-1]),
                    "payload": {"text": "hello"}}]
    write_session(
        path,
        time=time,
        emg_left=emg[:, 0],
        emg_right=emg[:, 1],
        keystrokes=keystrokes,
        prompts=prompts,
        session_name=session_name or os.path.splitext(os.path.basename(str(path)))[0],
        user=user,
        field_order=field_order,
    )
    return path, time


def make_tiny_split(root):
    """Three 4-second sessions (train, val, test) of white noise with keystrokes, and their split
    file; returns (root, split path)."""
    from emgtf.data.splits import write_split_file

    for i, name in enumerate(["train", "val", "test"]):
        make_session_file(root / f"{name}.hdf5", num_samples=8000, seed=i)
    split = write_split_file(root / "split.yaml", name="tiny", train=["train"], val=["val"], test=["test"])
    return root, split


def tiny_tcn_overrides(data, run_dir, *extra, logger: str = "none", epochs: int = 1) -> list[str]:
    """fit overrides for a tiny TCN on :func:`make_tiny_split` data: one batch per epoch."""
    root, split = data
    return [
        f"data.root={root}", f"data.split={split}", f"run_dir={run_dir}", f"logger={logger}",
        "model=tcn", "model.mlp_features=[16]", "model.hidden_size=8", "model.num_layers=1",
        "model.spec_augment=false", "augment=none",
        f"trainer.epochs={epochs}", "trainer.batch_size=4", "trainer.window_length=2000",
        "trainer.padding=[200,100]", "trainer.val_batch_size=8", "trainer.verbose=0", *extra,
    ]


@pytest.fixture
def session_file(tmp_path):
    """A small session file (8000 samples, keys 'hello') and its timestamps."""
    return make_session_file(tmp_path / "session.hdf5")


def pytest_sessionfinish(session, exitstatus):
    session.config._emgtf_exitstatus = int(exitstatus)


def pytest_unconfigure(config):
    # TF 2.21 can hang at interpreter exit when a tf.data numpy_function thread is still alive
    # (see emgtf/data/pipeline.py, _let_readers_finish). By now pytest has printed its summary;
    # leave without running interpreter finalisers, so a finished test run can never hang CI.
    status = getattr(config, "_emgtf_exitstatus", None)
    if status is not None and os.environ.get("EMGTF_TEST_CLEAN_EXIT", "1") == "1":
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
