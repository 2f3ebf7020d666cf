"""Helpers shared by the tests: small real session files written with emgtf's own writer, tiny
training configs, and :func:`run_layer_test`, the one test every custom Keras layer goes through."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emgtf.data import write_session

REPO = Path(__file__).resolve().parents[1]  # the checkout: scripts/, configs/, README.md
# Real files for tests (a KenLM model, Meta's split files) in the shared/ folder beside a checkout.
FIXTURES = REPO.parent / "shared" / "fixtures"

T0 = 1_622_765_527.0  # a unix time in the range of the real sessions


CLOCKS = ("regular", "jittered", "gaps")


def sample_times(num_samples: int, clock: str, seed: int = 0) -> np.ndarray:
    """Sample times from T0 at 2 kHz: ``regular``; ``jittered`` (every interval 0.3..0.7 ms, so
    the times drift away from the nominal grid); ``gaps`` (jittered, plus a few recording gaps of
    0.5..3 s and runs of repeated times)."""
    rng = np.random.default_rng(seed)
    if clock == "regular":
        return T0 + np.arange(num_samples) / 2000.0
    steps = rng.uniform(0.0003, 0.0007, num_samples)
    if clock == "gaps":
        steps[rng.integers(1, num_samples, 4)] = rng.uniform(0.5, 3.0, 4)
        for start in rng.integers(1, num_samples - 20, 6):
            steps[start : start + 20] = 0.0
    steps[0] = 0.0
    return T0 + np.cumsum(steps)


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
    time: np.ndarray | None = None,
):
    """Writes a session of white noise (std 2.5) sampled at 2 kHz from T0; returns (path, time).

    ``emg`` (num_samples, 2, 16) replaces the noise when given; ``time`` (num_samples,) the
    sample times (a jittered or broken clock).
    """
    rng = np.random.default_rng(seed)
    if time is None:
        time = T0 + np.arange(num_samples) / 2000.0
    num_samples = len(time)
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


@contextlib.contextmanager
def python_sigint():
    """Ctrl-C as in a terminal for the block: Python's own SIGINT handler, whatever the test
    runner was started with (a background job of a shell, or a runner's worker, ignores SIGINT)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def sigint_as_default():
    """``preexec_fn`` for a child that Ctrl-C must reach (see :func:`python_sigint`)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def make_tiny_split(root, *, num_samples: int = 8000):
    """Three sessions (train, val, test; 4 s by default) of white noise with keystrokes, and their
    split file; returns (root, split path)."""
    from emgtf.data.splits import write_split_file

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(["train", "val", "test"]):
        make_session_file(root / f"{name}.hdf5", num_samples=num_samples, seed=i)
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


def fit_process(args, run_dir, env=None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m emgtf.fit ARGS`` in a child process, run from ``run_dir``'s parent, for what
    only a fresh process can set (logical devices, the Keras backend); ``env`` adds variables."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "EMGTF_CONFIG_DIR": str(REPO / "configs"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "emgtf.fit", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=run_dir.parent)


# --- layers -------------------------------------------------------------------------------------


def random_emg(batch: int, time: int, seed: int = 0) -> np.ndarray:
    """(batch, time, 2, 16) float32: white noise of std 2.5 (the real data's scale) plus a
    per-channel sinusoid."""
    rng = np.random.default_rng(seed)
    t = np.arange(time)[None, :, None, None] / 2000.0
    freqs = rng.uniform(20, 900, size=(batch, 1, 2, 16))
    x = rng.normal(0, 2.5, size=(batch, time, 2, 16)) + 5 * np.sin(2 * np.pi * freqs * t)
    return x.astype("float32")


def random_spectrogram(batch: int = 4, frames: int = 120, seed: int = 0) -> np.ndarray:
    """(batch, frames, 2, 16, 33) float32: the log spectrogram of :func:`random_emg`."""
    from keras import ops

    from emgtf.models.layers import LogSpectrogram

    return ops.convert_to_numpy(LogSpectrogram()(random_emg(batch, 64 + 16 * (frames - 1), seed)))


def _assert_close(got, want) -> None:
    if np.issubdtype(np.asarray(want).dtype, np.floating):
        np.testing.assert_allclose(got, want, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, want)


def run_layer_test(
    layer_cls,
    init_kwargs: dict,
    input_data,
    tmp_path,
    *,
    call_kwargs: dict | None = None,
    expected_output_shape: tuple | None = None,
    expected_trainable_weights: int | None = None,
    run_training_step: bool = True,
):
    """The checks every custom emgtf layer passes; returns the layer's inference output.

    1. built from ``init_kwargs`` and called on ``input_data`` (an array, or a list of arrays for
       several inputs; ``call_kwargs`` go to every call), its output has ``expected_output_shape``
       (``None`` entries are not checked) and it has ``expected_trainable_weights`` weights;
    2. ``get_config`` / ``from_config`` gives a layer with the same config which, with the same
       weights, computes the same output;
    3. in a functional model saved as ``.keras`` and loaded again, the same output and config;
    4. a training step (SGD on the mean square of the output) changes its trainable weights, and
       a training-mode call gives finite values.
    """
    import keras
    from keras import ops

    call_kwargs = dict(call_kwargs or {})
    inputs = list(input_data) if isinstance(input_data, (list, tuple)) else [input_data]
    layer = layer_cls(**init_kwargs)
    output = ops.convert_to_numpy(layer(*inputs, **call_kwargs))
    if expected_output_shape is not None:
        assert len(output.shape) == len(expected_output_shape), (output.shape, expected_output_shape)
        for got, want in zip(output.shape, expected_output_shape):
            assert want is None or got == want, (output.shape, expected_output_shape)
    if expected_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_trainable_weights

    config = layer.get_config()
    clone = layer_cls.from_config(config)
    clone(*inputs, **call_kwargs)
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == config
    _assert_close(ops.convert_to_numpy(clone(*inputs, **call_kwargs)), output)

    symbolic = [keras.Input(shape=x.shape[1:], dtype=str(x.dtype)) for x in inputs]
    model = keras.Model(symbolic, layer_cls.from_config(config)(*symbolic, **call_kwargs))
    model.layers[-1].set_weights(layer.get_weights())
    path = tmp_path / f"{layer_cls.__name__}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    reloaded = loaded.layers[-1]
    assert type(reloaded) is layer_cls and reloaded.get_config() == config
    _assert_close(ops.convert_to_numpy(loaded(inputs if len(inputs) > 1 else inputs[0])), output)

    trained = ops.convert_to_numpy(layer(*inputs, training=True, **call_kwargs))
    assert np.isfinite(trained).all()
    if run_training_step and layer.trainable_weights:
        before = [ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=lambda y, p: ops.mean(ops.square(p)))
        model.train_on_batch(inputs if len(inputs) > 1 else inputs[0], np.zeros(output.shape, "float32"))
        after = [ops.convert_to_numpy(w) for w in model.trainable_weights]
        assert any(not np.array_equal(a, b) for a, b in zip(after, before)), "no weight changed"
    return output


def save_and_load(model, tmp_path, name: str = "model.keras"):
    """``model`` saved as a ``.keras`` file in ``tmp_path`` and loaded back."""
    import keras

    path = tmp_path / name
    model.save(path)
    return keras.saving.load_model(path)


# The first lines of a consumer script run with ``python -c``: it fails on any import of emgtf
# (installed here), as it would where emgtf is not.
NO_EMGTF = """
import importlib.abc, sys

class NoEmgtf(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "emgtf":
            raise ModuleNotFoundError("No module named 'emgtf'")
        return None

sys.meta_path.insert(0, NoEmgtf())
"""


@dataclass
class CommandResult:
    """What a command printed, in the shape of ``subprocess.CompletedProcess``."""

    returncode: int
    stdout: str
    stderr: str


def run_command(capsys, command: str, *args) -> CommandResult:
    """``python -m emgtf.<command> ARGS`` run in this process through :func:`emgtf.cli.run`, the
    error handling of every entry point (an EmgtfError is one line on stderr and exit 2), in a
    fraction of an interpreter's start-up. What only a real process shows (the muted TensorFlow
    import, the console script) is tested once, in tests/test_packaging.py."""
    from emgtf.cli import run

    main = importlib.import_module(f"emgtf.cli.{command}").main
    capsys.readouterr()
    try:
        code = run(main, f"emgtf.{command}", [str(a) for a in args])
    except SystemExit as e:  # argparse: --help, usage errors
        code = e.code if isinstance(e.code, int) else 2
    out, err = capsys.readouterr()
    return CommandResult(code, out, err)
