"""The training loop and ``python -m emgtf.fit`` on tiny real data: run folder, exact resume,
reproducibility, refusals, infeasible labels, divergence."""

import csv
import json
import math
import warnings

import keras
import numpy as np
import pytest
from tests.helpers import T0, make_session_file, run_command

from emgtf import config, training
from emgtf.cli import fit
from emgtf.inference.checkpoints import load_checkpoint
from emgtf.training.targets import InfeasibleWindowWarning
from emgtf.run_folder import read_history
from emgtf.data.splits import write_split_file
from emgtf.errors import EmgtfError

SAMPLES = 12_000  # 6 s per session: 6 windows of 2000 samples


def tiny_dataset(root, dense_keys: bool = False):
    """Two train sessions, one val, one test; ``dense_keys``: the first train session has 300
    keystrokes in its first second, more than any model emits frames for there."""
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(["train0", "train1", "val", "test"]):
        keystrokes = None
        if dense_keys and name == "train0":
            keystrokes = [{"key": "abc"[k % 3], "start": T0 + k * 0.003, "end": T0 + k * 0.003 + 0.001}
                          for k in range(300)]
        make_session_file(root / f"{name}.hdf5", num_samples=SAMPLES, seed=i, keystrokes=keystrokes)
    return write_split_file(root / "split.yaml", name="tiny", train=["train0", "train1"], val=["val"], test=["test"])


def tiny_overrides(root, split, run_dir, *extra):
    """A tiny BiGRU (small_rnn) unless ``extra`` names another model."""
    model = [] if any(a.startswith("model=") for a in extra) else ["model=small_rnn"]
    return [
        f"data.root={root}", f"data.split={split}", f"run_dir={run_dir}", *model,
        "model.hidden_size=8", "model.mlp_features=[16]", "model.num_layers=1",
        "trainer.epochs=2", "trainer.batch_size=4", "trainer.window_length=2000",
        "trainer.padding=[200,100]", "trainer.val_batch_size=8", "trainer.verbose=0", *extra,
    ]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return root, tiny_dataset(root)


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    """A two-epoch run of ``python -m emgtf.fit`` (in process), with its test evaluation."""
    root, split = data
    run_dir = tmp_path_factory.mktemp("runs") / "a"
    assert fit.main(tiny_overrides(root, split, run_dir)) == 0
    return run_dir


def without_timing(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


class StopAfterFirstEpoch(keras.callbacks.Callback):
    """Ends the run after its first epoch, like a kill between epochs."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


def test_fit_writes_config_history_checkpoints_and_test_report(fitted, data):
    root, _ = data
    saved = config.load_saved(fitted / "config.yaml")
    assert saved.data.root == str(root) and saved.trainer.epochs == 2 and saved.model.family == "rnn"
    with open(fitted / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row in rows:
        for column in ("train/loss", "val/loss", "val/CER", "val/IER", "val/DER", "val/SER", "val/rendered_CER", "lr"):
            assert math.isfinite(float(row[column])), column
        cer = float(row["val/CER"])
        assert cer == pytest.approx(float(row["val/IER"]) + float(row["val/DER"]) + float(row["val/SER"]))
    state = json.loads((fitted / "last.json").read_text())
    best_epoch = min(rows, key=lambda r: (float(r["val/CER"]), float(r["val/loss"])))["epoch"]
    assert state["epoch"] == 2 and state["best_epoch"] == int(best_epoch)
    for name in ("best.keras", "last.keras"):
        model = load_checkpoint(fitted / name, "rnn")
        assert model.name == "rnn"
    assert list((fitted / "tensorboard").rglob("events.out.tfevents.*"))
    report = json.loads((fitted / "best.test.greedy.eval.json").read_text())
    assert [s["session"] for s in report["sessions"]] == ["test"] and report["split"] == "test"


def image_summaries(folder, tag):
    """(step, description, decoded image) of every ``tag`` image summary in ``folder``'s event files."""
    import io

    import matplotlib.image
    import tensorflow as tf

    found = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == tag:
                    assert value.metadata.plugin_data.plugin_name == "images"
                    width, height, png = value.tensor.string_val[:3]
                    image = matplotlib.image.imread(io.BytesIO(png), format="png")
                    assert image.shape[:2] == (int(height), int(width))
                    found.append((event.step, value.metadata.summary_description, image))
    return found


def test_validation_confusion_matrix_is_a_tensorboard_image_every_epoch(fitted, data):
    from emgtf.data import make_dataset

    root, _ = data
    images = image_summaries(fitted / "tensorboard" / "validation", "val/confusion")
    # Every window the validation scored (tiny_overrides: 2000 + 200/100 samples, batch 8).
    val = make_dataset([str(root / "val.hdf5")], window_length=2000, padding=(200, 100), batch_size=8)
    windows = sum(int(batch["emg"].shape[0]) for batch in val)
    # At the steps of Keras's own epoch scalars (0-based epochs).
    assert [(step, text) for step, text, _ in images] == [
        (0, f"substitutions in {windows} val windows, epoch 1"),
        (1, f"substitutions in {windows} val windows, epoch 2"),
    ]
    for _, _, image in images:
        assert image.shape[0] > 500 and image.shape[2] in (3, 4) and np.ptp(image) > 0


@pytest.mark.slow  # trains or starts a process: tens of seconds on 2 cores
def test_same_seed_same_history_and_resume_continues_exactly(fitted, data, tmp_path):
    """Run B stops after epoch 1 (a kill) and is resumed: its history equals run A's, row for row
    (the second run of the same seed reproduces the first, and the resumed epoch uses the same
    learning rates, data order and augmentation draws as the uninterrupted one)."""
    root, split = data
    run_b = tmp_path / "b"
    cfg = config.compose("fit", tiny_overrides(root, split, run_b, "logger=none"))
    first = training.train(cfg, extra_callbacks=[StopAfterFirstEpoch()])
    assert first.epochs_completed == 1 and json.loads((run_b / "last.json").read_text())["epoch"] == 1
    resumed = training.train(fit.load_config(["resume=true", f"run_dir={run_b}"]))
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    reference = read_history(fitted / "history.csv")
    assert without_timing(resumed.history) == without_timing(reference)


class InterruptMidSecondEpoch(keras.callbacks.Callback):
    """Ctrl-C at the second batch of epoch 2: weights and optimizer have moved past last.keras."""

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == 1 and batch == 1:
            raise KeyboardInterrupt

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch


def test_resume_after_an_interruption_mid_epoch_repeats_that_epoch_exactly(fitted, data, tmp_path):
    root, split = data
    run_c = tmp_path / "c"
    cfg = config.compose("fit", tiny_overrides(root, split, run_c, "logger=none"))
    with pytest.raises(KeyboardInterrupt):
        training.train(cfg, extra_callbacks=[InterruptMidSecondEpoch()])
    assert json.loads((run_c / "last.json").read_text())["epoch"] == 1
    assert [r["epoch"] for r in read_history(run_c / "history.csv")] == [1]
    resumed = training.train(fit.load_config(["resume=true", f"run_dir={run_c}"]))
    assert without_timing(resumed.history) == without_timing(read_history(fitted / "history.csv"))


@pytest.mark.slow
def test_mixed_precision_with_xla_trains_and_checkpoints(data, tmp_path):
    root, split = data
    run_dir = tmp_path / "mixed"
    overrides = tiny_overrides(root, split, run_dir, "logger=none", "trainer.epochs=1",
                               "trainer.mixed_precision=true", "trainer.jit_compile=true")
    # Keras would quietly train without XLA under TensorFlow's op determinism.
    with pytest.raises(EmgtfError, match="XLA does not run with trainer.deterministic=true"):
        training.train(config.compose("fit", overrides))
    cfg = config.compose("fit", [*overrides, "trainer.deterministic=false"])
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*jit_compile.*")
            result = training.train(cfg)
        model = load_checkpoint(run_dir / "best.keras", "rnn")
        assert model.dtype_policy.name == "mixed_float16"
    finally:
        keras.config.set_dtype_policy("float32")  # the policy is global: leave it as found
    row = result.history[0]
    assert math.isfinite(row["train/loss"]) and math.isfinite(row["val/CER"])
    # The log-probabilities leave the model in float32 whatever the compute dtype (CTC needs it).
    assert model.outputs[0].dtype == "float32"


def test_resume_needs_a_run_to_continue(tmp_path, data):
    root, split = data
    (tmp_path / "notes.txt").write_text("not a run\n")  # (a folder with only config.yaml restarts)
    cfg = config.compose("fit", tiny_overrides(root, split, tmp_path, "resume=true"))
    with pytest.raises(EmgtfError, match="has no last.keras"):
        training.train(cfg)
    with pytest.raises(EmgtfError, match="resume=true needs run_dir"):
        fit.load_config(["resume=true"])


def test_refuses_to_write_into_a_used_run_dir(fitted, data):
    root, split = data
    before = (fitted / "history.csv").read_text()
    with pytest.raises(EmgtfError, match="is not empty"):
        fit.main(tiny_overrides(root, split, fitted))
    assert (fitted / "history.csv").read_text() == before


def test_checkpoint_of_another_family_is_refused(fitted, data, tmp_path, capsys):
    root, split = data
    args = tiny_overrides(root, split, tmp_path / "c", "model=tds_conv_ctc", f"checkpoint={fitted / 'best.keras'}")
    args = [a for a in args if not a.startswith(("model.hidden_size", "model.num_layers"))]
    result = run_command(capsys, "fit", *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"emgtf.fit: error: checkpoint {fitted / 'best.keras'} holds a 'rnn' model, not 'tds_conv_ctc' "
        "(choose model=rnn or another checkpoint)"
    ]


def test_checkpoint_of_the_same_family_starts_from_its_weights(fitted, data, tmp_path):
    root, split = data
    cfg = config.compose("fit", tiny_overrides(root, split, tmp_path / "ft", "logger=none", "trainer.epochs=1",
                                               "schedule=constant", f"checkpoint={fitted / 'last.keras'}"))
    result = training.train(cfg, hp_overrides={"optimizer.learning_rate": 1e-12, "dropout": 0.0})
    tuned = [w.numpy() for w in load_checkpoint(result.last_checkpoint).trainable_weights]
    source = [w.numpy() for w in load_checkpoint(fitted / "last.keras").trainable_weights]
    # A learning rate of 1e-12 leaves the trained weights where the checkpoint had them (the
    # normalisation statistics move on regardless).
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(tuned, source))
    assert config.load_saved(tmp_path / "ft" / "config.yaml").model.dropout == 0.0


def test_infeasible_window_warns_once_and_is_left_out_of_the_loss(tmp_path):
    root = tmp_path / "dense"
    split = tiny_dataset(root, dense_keys=True)
    cfg = config.compose("fit", tiny_overrides(root, split, tmp_path / "run", "logger=none", "trainer.epochs=1",
                                               "trainer.jitter=false"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = training.train(cfg)
    infeasible = [w for w in caught if issubclass(w.category, InfeasibleWindowWarning)]
    assert len(infeasible) == 1
    assert "session train0 starting at sample 0" in str(infeasible[0].message)
    assert result.skipped_windows >= 1
    assert math.isfinite(result.history[0]["train/loss"]) and math.isfinite(result.history[0]["val/loss"])


class PoisonWeights(keras.callbacks.Callback):
    """Sets the classifier's weights to NaN before step 2 of epoch 2, as a diverging update would.
    (The classifier, not an earlier layer: oneDNN's ReLU maps NaN to 0, which would hide it.)"""

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == 1 and batch == 1:
            variable = self.model.get_layer("classifier").kernel
            variable.assign(np.full(variable.shape, np.nan, dtype="float32"))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch


def test_nan_stops_training_naming_epoch_and_step_and_keeps_the_last_good_checkpoint(data, tmp_path):
    root, split = data
    cfg = config.compose("fit", tiny_overrides(root, split, tmp_path / "nan", "logger=none"))
    with pytest.raises(training.TrainingDiverged, match=r"at epoch 2, step 2; .*last.keras \(epoch 1\)") as info:
        training.train(cfg, extra_callbacks=[PoisonWeights()])
    assert (info.value.epoch, info.value.step) == (2, 2)
    assert json.loads((tmp_path / "nan" / "last.json").read_text())["epoch"] == 1
    weights = load_checkpoint(tmp_path / "nan" / "last.keras").get_weights()
    assert all(np.isfinite(w).all() for w in weights)
    assert len(read_history(tmp_path / "nan" / "history.csv")) == 1


@pytest.mark.slow  # a whole fit run with its test evaluation: ~20 s on 2 cores
def test_fit_unshares_the_hands_of_a_shared_checkpoint(data, tmp_path):
    """``fit checkpoint=<splashnet> model.share_hands=false``: the checkpoint's family, each hand
    its own TDS stack, both starting from the shared weights."""
    from emgtf import models
    from tests.helpers import random_emg

    root, split = data
    keras.utils.set_random_seed(0)
    sizes = ["model.mlp_features=[16]", "model.block_channels=[4,4]", "model.kernel_width=4"]
    shared = models.build("splashnet_mini", mlp_features=[16], block_channels=[4, 4], kernel_width=4)
    shared.save(tmp_path / "shared.keras")
    args = [a for a in tiny_overrides(root, split, tmp_path / "ft", "logger=none", "trainer.epochs=1",
                                      "schedule=constant", f"checkpoint={tmp_path / 'shared.keras'}",
                                      "model.share_hands=false", *sizes)
            if not a.startswith(("model=", "model.hidden_size", "model.num_layers"))]  # the checkpoint's family
    cfg = fit.load_config(args)
    assert cfg.model.family == "splashnet_mini" and cfg.model.share_hands is False
    result = training.train(cfg, hp_overrides={"optimizer.learning_rate": 1e-12})
    tuned = load_checkpoint(result.last_checkpoint, "splashnet_mini")
    assert "hand1_tds_fc_2" in {layer.name for layer in tuned.layers}
    x = random_emg(1, 1500)
    np.testing.assert_allclose(tuned(x, training=False).numpy(), shared(x, training=False).numpy(), atol=1e-5)


@pytest.mark.slow  # a fit process under JAX: about a minute on 2 cores
def test_fit_under_jax_compiles_its_steps_and_evaluates_the_test_split(tmp_path):
    """The whole ``python -m emgtf.fit`` under KERAS_BACKEND=jax, test evaluation included (it
    once failed there: tf.data batches reached JAX's compiled predict step)."""
    pytest.importorskip("jax")
    from emgtf.data import EMGSession
    from tests.helpers import fit_process, make_tiny_split, tiny_tcn_overrides

    root, split = make_tiny_split(tmp_path / "data")
    run_dir = tmp_path / "run"
    done = fit_process(tiny_tcn_overrides((root, split), run_dir), run_dir, {"KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "steps per epoch, XLA, epochs 1..1" in done.stdout  # trainer.jit_compile=auto
    (row,) = read_history(run_dir / "history.csv")
    assert math.isfinite(row["train/loss"]) and math.isfinite(row["val/CER"])
    report = json.loads((run_dir / "best.test.greedy.eval.json").read_text())
    with EMGSession(root / "test.hdf5") as session:
        truth = session.ground_truth().text
    (scored,) = report["sessions"]
    assert (scored["session"], scored["target"], report["overall"]["target_chars"]) == ("test", truth, len(truth))
