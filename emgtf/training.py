"""The training loop: one Keras ``fit`` of a config, used by ``python -m emgtf.fit`` and by the tuner.

What one run does (``train(cfg)``):

- windows of the train split (``trainer.window_length`` samples plus ``trainer.padding`` of
  context, random jitter inside the stride, raw-EMG ``augment``) go through ``make_dataset``;
  a numpy step in the pipeline adds each window's emission length (``emgtf.models.emission_lengths``
  of the model being trained, so any family works) in front of its labels, the ``y_true`` of
  :class:`emgtf.losses.CTCLoss`. A window whose labels cannot be aligned to its frames gets emission
  length 0 (left out of the loss) and one warning naming it;
- Adam (``optimizer``) with the warm-up + cosine ``schedule`` of the reference, scaled to
  ``trainer.epochs``; the schedule is a function of the optimizer's step, which is checkpointed;
- after every epoch the whole validation split is decoded greedily, in windows like the
  training ones but without jitter or augmentation: ``val_loss``, ``val_CER``, ``val_IER``,
  ``val_DER``, ``val_SER`` go into the Keras logs (KerasTuner objectives) and ``history.csv``
  (as ``val/CER`` ...); ``best.keras`` keeps the best val CER, ``last.keras`` + ``last.json`` the
  latest epoch with the optimizer state;
- ``resume=true`` reloads ``last.keras`` and continues at the next epoch with the same learning
  rate curve and the same data order: the pipeline redraws its shuffle, jitter and augmentation
  seeds from the run's seed at every pass over the data (one per epoch), so the seeds of epoch e
  depend only on the seed and e; resuming replays the passes of the finished epochs (one batch
  each, see :func:`_replay_epochs`). Same seed, same machine: the same history, resumed or not.

Files in the run folder: ``config.yaml`` (resolved), ``history.csv``, ``best.keras``,
``last.keras``, ``last.json``, ``tensorboard/``.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from emgtf import config as config_lib
from emgtf.errors import EmgtfError


class TrainingDiverged(EmgtfError):
    """The training loss became NaN or infinite; ``epoch`` and ``step`` are 1-based."""

    def __init__(self, epoch: int, step: int, last_checkpoint: Path | None, last_epoch: int):
        self.epoch, self.step = epoch, step
        kept = (
            f"the last good checkpoint is {last_checkpoint} (epoch {last_epoch})"
            if last_checkpoint is not None and last_epoch > 0
            else "no epoch finished, so there is no checkpoint"
        )
        super().__init__(
            f"training loss became NaN or infinite at epoch {epoch}, step {step}; stopped: {kept}. "
            "Try a lower optimizer.learning_rate or optimizer.clipnorm=1.0"
        )


class InfeasibleWindowWarning(UserWarning):
    """A training window with more labels than the model emits frames for it."""


@dataclass
class TrainResult:
    """What a run produced. ``best_val_cer`` is in percent (inf if no epoch was validated)."""

    run_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    best_epoch: int | None
    best_val_cer: float
    history: list[dict] = field(default_factory=list)
    epochs_completed: int = 0
    skipped_windows: int = 0


# --- configuration -----------------------------------------------------------------------------


def resolve_data(data_cfg) -> tuple[Path, str]:
    """(data root, split spec) of a ``data`` config; root null = the embedded synthetic dataset."""
    root, split = data_cfg.get("root"), data_cfg.get("split")
    if root is None:
        from emgtf.synth import default_dataset

        root, split_file = default_dataset()
        return Path(root), str(split if split is not None else split_file)
    if split is None:
        raise EmgtfError(
            "data.split must be set when data.root is: a split name (configs/splits) or a split file"
        )
    return Path(str(root)).expanduser(), str(split)


def model_spec(cfg) -> tuple[str, dict]:
    """(family, hyperparameters) of the ``model`` config."""
    model_cfg = config_lib.to_container(cfg.model)
    family = model_cfg.pop("family", None)
    if not family:
        raise EmgtfError("model.family is not set (choose model=<family>, e.g. model=tds_conv_ctc)")
    return str(family), model_cfg


def apply_hp_overrides(cfg: DictConfig, hp_overrides: Mapping | None) -> DictConfig:
    """``cfg`` with tuner values set: keys with a dot are config keys (``optimizer.learning_rate``),
    plain keys are model hyperparameters (``dropout`` = ``model.dropout``)."""
    if not hp_overrides:
        return cfg
    cfg = cfg.copy()
    OmegaConf.set_struct(cfg, False)  # a tuner may try a hyperparameter the family YAML leaves out
    for key, value in hp_overrides.items():
        OmegaConf.update(cfg, key if "." in key else f"model.{key}", value, merge=False)
    OmegaConf.set_struct(cfg, True)
    return cfg


def _int(cfg, key: str, minimum: int = 1) -> int:
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise EmgtfError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _validate(cfg) -> None:
    for key in ("trainer.epochs", "trainer.batch_size", "trainer.window_length", "trainer.val_batch_size"):
        _int(cfg, key)
    _int(cfg, "seed", 0)
    stride = cfg.trainer.get("stride")
    if stride is not None:
        _int(cfg, "trainer.stride")
    padding = cfg.trainer.padding
    if len(padding) != 2 or any(isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in padding):
        raise EmgtfError(f"trainer.padding must be two integers >= 0 (left, right), got {list(padding)}")
    fraction = cfg.trainer.get("fraction", 1.0)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise EmgtfError(f"trainer.fraction must be a number in (0, 1], got {fraction!r}")
    if cfg.trainer.get("verbose", "auto") not in ("auto", 0, 1, 2):
        raise EmgtfError(f"trainer.verbose must be auto, 0, 1 or 2, got {cfg.trainer.verbose!r}")


def _precision_policy(value) -> str:
    if value is False or value is None:
        return "float32"
    if value is True:
        return "mixed_float16"
    if value in ("mixed_float16", "mixed_bfloat16", "float32"):
        return value
    raise EmgtfError(
        f"trainer.mixed_precision must be false, true, mixed_float16 or mixed_bfloat16, got {value!r}"
    )


# --- checkpoints -------------------------------------------------------------------------------


def checkpoint_family(path) -> str:
    """The model family stored in a ``.keras`` file (its model name), read without loading it."""
    path = Path(path)
    if not path.is_file():
        raise EmgtfError(f"checkpoint {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            doc = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError):
        raise EmgtfError(f"checkpoint {path} is not a Keras .keras file") from None
    name = (doc.get("config") or {}).get("name")
    if not name:
        raise EmgtfError(f"checkpoint {path} has no model name (not saved by emgtf?)")
    return str(name)


def check_family(path, family: str) -> None:
    found = checkpoint_family(path)
    if found != family:
        raise EmgtfError(
            f"checkpoint {path} holds a '{found}' model, not '{family}' (choose model={found} "
            f"or another checkpoint)"
        )


def load_checkpoint(path, family: str | None = None):
    """A model from a ``.keras`` file, for inference (not compiled); checks the family first."""
    import keras

    import emgtf.losses  # noqa: F401  (registers the loss a compiled checkpoint names)
    import emgtf.models  # noqa: F401  (registers the layers)
    import emgtf.schedules  # noqa: F401

    if family is not None:
        check_family(path, family)
    else:
        checkpoint_family(path)
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # Keras raises many kinds for a damaged or foreign file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EmgtfError(f"cannot load checkpoint {path}: {first}") from None


# --- the pipeline ------------------------------------------------------------------------------


class TargetPacker:
    """The numpy step of the training pipeline: ``y_true`` (B, 1 + L) for CTCLoss.

    Column 0 is each window's emission length under the model being trained; a window CTC cannot
    align (more labels + repeats than frames) gets 0 there, which CTCLoss skips. The first such
    window is reported by session and start sample; later ones are only counted.
    """

    def __init__(self, model, label_bucket: int = 16):
        self.model = model
        self.label_bucket = label_bucket
        self.skipped = 0
        self.muted = False
        self._warned = False
        self._lock = threading.Lock()

    def __call__(self, emg_lengths, labels, label_lengths, sessions, starts):
        from emgtf.losses import ctc_feasible, pack_targets
        from emgtf.models import emission_lengths

        emitted = np.asarray(emission_lengths(self.model, emg_lengths), np.int64)
        feasible = ctc_feasible(labels, label_lengths, emitted)
        if not feasible.all() and not self.muted:
            with self._lock:
                self.skipped += int((~feasible).sum())
                if not self._warned:
                    self._warned = True
                    b = int(np.flatnonzero(~feasible)[0])
                    session = sessions[b].decode() if isinstance(sessions[b], bytes) else str(sessions[b])
                    warnings.warn(
                        f"training window of session {session} starting at sample {int(starts[b])} has "
                        f"{int(label_lengths[b])} labels but the model emits only {int(emitted[b])} "
                        "frames for it: CTC cannot align it, so it is left out of the loss "
                        "(reported once; the count follows at the end)",
                        InfeasibleWindowWarning,
                        stacklevel=1,
                    )
        # Label columns rounded up to a multiple of label_bucket: a few distinct batch shapes
        # instead of one per longest label, so XLA (jit_compile) compiles a few programs, not dozens.
        width = -(-labels.shape[1] // self.label_bucket) * self.label_bucket
        labels = np.pad(labels, ((0, 0), (0, width - labels.shape[1])), constant_values=-1)
        return pack_targets(np.where(feasible, emitted, 0), labels, label_lengths)


def training_pairs(dataset, packer: TargetPacker):
    """Maps dict batches to ``(emg, y_true)`` for ``model.fit``."""
    import tensorflow as tf

    def to_pair(batch):
        y = tf.numpy_function(
            packer,
            [batch["emg_lengths"], batch["labels"], batch["label_lengths"], batch["session"], batch["start"]],
            tf.int32,
            stateful=False,
        )
        y.set_shape((None, None))
        return batch["emg"], y

    return dataset.map(to_pair, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _datasets(cfg, split, model, packer):
    from emgtf.data import make_dataset

    t = cfg.trainer
    common = dict(window_length=int(t.window_length), padding=tuple(int(p) for p in t.padding))
    augment = config_lib.to_container(cfg.augment) if cfg.get("augment") is not None else None
    train = make_dataset(
        [str(p) for p in split.train],
        stride=t.get("stride"),
        jitter=bool(t.jitter),
        batch_size=int(t.batch_size),
        shuffle=True,
        seed=int(cfg.seed),
        augment=augment,
        fraction=float(t.get("fraction", 1.0)),
        # XLA compiles one program per batch shape: no odd-sized last batch when it is on.
        drop_remainder=bool(t.get("jit_compile", False)),
        **common,
    )
    # Validation windows are the training windows without jitter, shuffling or augmentation.
    val = make_dataset([str(p) for p in split.val], batch_size=int(t.val_batch_size), **common)
    return training_pairs(train, packer), val


# --- the run folder ----------------------------------------------------------------------------


def default_run_dir(label: str) -> Path:
    """``runs/<date>-<time>-<label>``, with a -2, -3 ... suffix if that folder exists."""
    base = Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{label}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def prepare_run_dir(run_dir, *, resume: bool, family: str) -> Path:
    """The run folder: refuses to write into a non-empty one unless resuming."""
    if run_dir is None:
        if resume:
            raise EmgtfError("resume=true needs run_dir=<the folder of the run to continue>")
        path = default_run_dir(family)
    else:
        path = Path(str(run_dir)).expanduser()
        if resume:
            if not (path / "last.keras").is_file():
                raise EmgtfError(f"resume=true: {path} has no last.keras to continue from")
        elif path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise EmgtfError(
                f"run_dir {path} is not empty; choose a new run_dir, or resume=true to continue that run"
            )
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- the loop ----------------------------------------------------------------------------------

def _setup_runtime(cfg):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(cfg.seed))
    if (cfg.trainer.get("jit_compile", False) and cfg.trainer.get("deterministic", True)
            and keras.backend.backend() == "tensorflow"):
        # Keras silently drops XLA when TensorFlow's op determinism is on; say so instead.
        raise EmgtfError(
            "trainer.jit_compile: XLA does not run with trainer.deterministic=true under TensorFlow; "
            "set trainer.deterministic=false"
        )
    if cfg.trainer.get("deterministic", True):
        # Same seed, same machine -> the same history (CPU); costs speed on a GPU.
        tf.config.experimental.enable_op_determinism()
    else:
        # The switch is process-wide: a run (or trial) without it must not inherit an earlier one's.
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()
    keras.config.set_dtype_policy(_precision_policy(cfg.trainer.get("mixed_precision", False)))


def make_optimizer(opt_cfg, learning_rate):
    import keras

    name = opt_cfg.get("name", "adam")
    kwargs = dict(
        learning_rate=learning_rate,
        beta_1=float(opt_cfg.get("beta_1", 0.9)),
        beta_2=float(opt_cfg.get("beta_2", 0.999)),
        epsilon=float(opt_cfg.get("epsilon", 1e-8)),
    )
    if opt_cfg.get("clipnorm") is not None:
        kwargs["clipnorm"] = float(opt_cfg.clipnorm)
    if name == "adam":
        if opt_cfg.get("weight_decay") is not None:
            kwargs["weight_decay"] = float(opt_cfg.weight_decay)
        return keras.optimizers.Adam(**kwargs)
    if name == "adamw":
        return keras.optimizers.AdamW(weight_decay=float(opt_cfg.get("weight_decay") or 0.0), **kwargs)
    raise EmgtfError(f"optimizer.name: unknown optimizer '{name}' (choose adam or adamw)")


def _verbose(cfg) -> int:
    value = cfg.trainer.get("verbose", "auto")
    if value == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(value)


def saved_config(cfg, *, root: Path, split: str, run_dir: Path) -> DictConfig:
    """The config as run: data location resolved, run folder filled in, resume off."""
    out = cfg.copy()
    OmegaConf.set_struct(out, False)
    out.data.root = str(root)
    out.data.split = str(split)
    out.run_dir = str(run_dir)
    out.resume = False
    OmegaConf.set_struct(out, True)
    return out


def train(
    cfg: DictConfig,
    *,
    run_dir=None,
    extra_callbacks: Sequence = (),
    hp_overrides: Mapping | None = None,
) -> TrainResult:
    """Trains the model ``cfg`` describes (see the module docstring) and returns the result.

    ``run_dir`` overrides ``cfg.run_dir``; ``extra_callbacks`` run after emgtf's own (so they see
    ``val_CER`` in the logs); ``hp_overrides`` sets config values for this run (see
    :func:`apply_hp_overrides`). Raises :class:`TrainingDiverged` on a NaN loss.
    """
    cfg = apply_hp_overrides(cfg, hp_overrides)
    if run_dir is not None:
        cfg = cfg.copy()
        cfg.run_dir = str(run_dir)
    config_lib.check_complete(cfg)
    _validate(cfg)
    resume = bool(cfg.resume)
    family, hp = model_spec(cfg)
    if cfg.get("checkpoint") is not None and not resume:
        check_family(cfg.checkpoint, family)
    root, split_spec = resolve_data(cfg.data)
    from emgtf.data.splits import load_split

    split = load_split(split_spec, root)
    if not split.train or not split.val:
        raise EmgtfError(f"split '{split.name}' needs train and val sessions to train")
    path = prepare_run_dir(cfg.run_dir, resume=resume, family=family)
    if resume:
        check_family(path / "last.keras", family)

    # Config and file mistakes are reported above, before TensorFlow loads (seconds).
    _setup_runtime(cfg)
    import keras

    from emgtf import models, wandb_logging
    from emgtf.callbacks import (
        Checkpoints,
        DivergenceGuard,
        History,
        LearningRateLog,
        RunState,
        Validation,
        read_history,
    )
    from emgtf.data import data_errors
    from emgtf.losses import CTCLoss
    from emgtf.schedules import make_schedule

    try:
        model = models.build(family, **hp)
    except EmgtfError:
        _remove_if_empty(path)  # a fresh folder for a run that never started
        raise
    if cfg.get("checkpoint") is not None and not resume:
        source = load_checkpoint(cfg.checkpoint, family)
        try:
            model.set_weights(source.get_weights())
        except ValueError as e:
            raise EmgtfError(
                f"checkpoint {cfg.checkpoint} does not fit the model.* hyperparameters "
                f"({str(e).splitlines()[0]})"
            ) from None
        del source

    packer = TargetPacker(model)
    train_ds, val_ds = _datasets(cfg, split, model, packer)
    steps = int(train_ds.cardinality())
    if steps <= 0:
        raise EmgtfError("the training split gave no batches (sessions shorter than trainer.window_length?)")
    epochs = int(cfg.trainer.epochs)
    schedule = make_schedule(
        cfg.schedule, peak=float(cfg.optimizer.learning_rate), epochs=epochs, steps_per_epoch=steps
    )
    loss = CTCLoss()
    model.compile(
        optimizer=make_optimizer(cfg.optimizer, schedule),
        loss=loss,
        jit_compile=bool(cfg.trainer.get("jit_compile", False)),
    )

    state = RunState(run_dir=path)
    initial_epoch = 0
    if resume:
        initial_epoch = _restore(model, path, steps)
        state.history = [r for r in read_history(path / "history.csv") if r["epoch"] <= initial_epoch]
        validated = [r for r in state.history if "val/CER" in r]
        if validated:
            best = min(validated, key=lambda r: (r["val/CER"], r.get("val/loss", math.inf)))
            state.best_val_cer, state.best_epoch = best["val/CER"], int(best["epoch"])
            state.best_val_loss = best.get("val/loss", math.inf)
        _replay_epochs(train_ds, initial_epoch, packer)
    OmegaConf.save(saved_config(cfg, root=root, split=split_spec, run_dir=path), path / "config.yaml")

    callbacks = [
        DivergenceGuard(state),
        LearningRateLog(state),
        Validation(val_ds, loss, state),
        History(state),
        Checkpoints(state, {"steps_per_epoch": steps, "family": family}),
    ]
    if cfg.logger.get("tensorboard", False) and _tensorboard_available():
        callbacks.append(
            keras.callbacks.TensorBoard(log_dir=str(path / "tensorboard"), write_graph=False, profile_batch=0)
        )
    # W&B (logger=wandb) must never stop a run: wandb_logging warns and goes on without it.
    wandb_run = wandb_logging.start_run(cfg, path, resume=resume)
    wandb_logger = wandb_logging.WandbLogger(wandb_run, state) if wandb_run is not None else None
    if wandb_logger is not None:
        callbacks.append(wandb_logger)
    callbacks.extend(extra_callbacks)

    print(f"emgtf.fit: {family} ({model.count_params():,} parameters), {steps} steps per epoch, "
          f"epochs {initial_epoch + 1}..{epochs}, run folder {path}", flush=True)
    try:
        if initial_epoch < epochs:
            with data_errors():
                model.fit(
                    # One iterator for the whole run, re-initialising the pipeline every epoch.
                    train_ds.repeat(),
                    steps_per_epoch=steps,
                    epochs=epochs,
                    initial_epoch=initial_epoch,
                    callbacks=callbacks,
                    verbose=_verbose(cfg),
                    shuffle=False,  # the dataset shuffles itself, reproducibly per epoch
                )
        else:
            print(f"emgtf.fit: {path} already has {initial_epoch} epochs (trainer.epochs={epochs})")
    except KeyboardInterrupt:
        if state.last_checkpoint.is_file():
            print(f"\nemgtf.fit: interrupted; continue with: python -m emgtf.fit resume=true run_dir={path}",
                  file=sys.stderr)
        raise
    finally:
        if wandb_logger is not None:
            wandb_logger.close(exit_code=0 if sys.exc_info()[0] is None else 1)

    if packer.skipped:
        print(f"emgtf.fit: {packer.skipped} training windows were left out of the loss "
              "(more labels than emitted frames)", file=sys.stderr)
    completed = state.history[-1]["epoch"] if state.history else initial_epoch
    if state.diverged:
        raise TrainingDiverged(*state.diverged, state.last_checkpoint if completed else None, completed)
    result = TrainResult(
        run_dir=path,
        best_checkpoint=state.best_checkpoint if state.best_checkpoint.is_file() else None,
        last_checkpoint=state.last_checkpoint if state.last_checkpoint.is_file() else None,
        best_epoch=state.best_epoch,
        best_val_cer=state.best_val_cer,
        history=state.history,
        epochs_completed=completed,
        skipped_windows=packer.skipped,
    )
    print(summary_table(result), flush=True)
    return result


def _restore(model, path: Path, steps_per_epoch: int) -> int:
    """Loads weights and optimizer state from ``last.keras``; returns the epochs it completed."""
    import keras

    model.optimizer.build(model.trainable_variables)
    try:
        model.load_weights(path / "last.keras")
    except ValueError as e:
        raise EmgtfError(
            f"{path / 'last.keras'} does not fit the configured model ({str(e).splitlines()[0]})"
        ) from None
    from emgtf.callbacks import seed_generator_states

    states = _read_json(path / "last.json").get("seed_generators")
    variables = seed_generator_states(model)
    if states is not None and len(states) == len(variables):
        for variable, value in zip(variables, states):
            variable.assign(np.asarray(value, dtype=variable.dtype))
    else:
        warnings.warn(f"{path / 'last.json'}: no random-generator states for this model; the resumed "
                      "run's SpecAugment and dropout draws will differ from an uninterrupted run's",
                      stacklevel=2)
    status = _read_json(path / "last.json")
    saved_steps = status.get("steps_per_epoch")
    if saved_steps is not None and saved_steps != steps_per_epoch:
        raise EmgtfError(
            f"resume: the run had {saved_steps} steps per epoch, this config gives {steps_per_epoch}; "
            "the data or trainer settings changed"
        )
    # The optimizer's step counter is saved in the same file as the weights, so it is right even if
    # the run was killed between writing last.keras and last.json. (Mixed float16 skips the count of
    # steps whose gradients overflowed; then last.json's epoch is the fallback.)
    iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    if iterations % steps_per_epoch == 0:
        return iterations // steps_per_epoch
    if "epoch" not in status:
        raise EmgtfError(f"resume: {path / 'last.json'} is missing or unreadable")
    return int(status["epoch"])


def _replay_epochs(dataset, epochs: int, packer: TargetPacker) -> None:
    """Advances the pipeline's random streams past ``epochs`` finished epochs.

    tf.data draws new shuffle, jitter and augmentation seeds from the run's seed for every iterator
    (every epoch); some streams draw when the iterator starts, some at its first element. So each
    finished epoch is replayed as one iterator that yields one batch: cheap (a batch, not an
    epoch, is read), and the next epoch then sees exactly the draws of an uninterrupted run.
    """
    packer.muted = True  # replayed batches are not trained on: no warnings, no counts
    try:
        for _ in range(epochs):
            next(iter(dataset))
    finally:
        packer.muted = False


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _tensorboard_available() -> bool:
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        # TensorFlow no longer pulls TensorBoard in; a missing logger must not stop a run.
        print("emgtf.fit: warning: the tensorboard package is not installed, so no TensorBoard logs "
              "(pip install tensorboard, or logger=none)", file=sys.stderr)
        return False
    return True


# --- reporting ---------------------------------------------------------------------------------


def _fmt(value, spec=".2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def summary_table(result: TrainResult, max_rows: int = 24) -> str:
    """The per-epoch table printed at the end of a run (long runs: first, best and last epochs)."""
    rows = result.history
    if len(rows) > max_rows:
        keep = {r["epoch"] for r in rows[:4]} | {r["epoch"] for r in rows[-(max_rows - 6):]}
        if result.best_epoch:
            keep.add(result.best_epoch)
        rows = [r for r in rows if r["epoch"] in keep]
    header = (
        f"{'epoch':>5}  {'lr':>9}  {'loss':>8}  {'val loss':>8}  {'val CER':>7}  "
        f"{'IER':>6}  {'DER':>6}  {'SER':>6}  {'s':>6}"
    )
    lines = ["", header, "-" * len(header)]
    previous = 0
    for r in rows:
        if r["epoch"] != previous + 1:
            lines.append(f"{'...':>5}")
        previous = r["epoch"]
        mark = "  *" if r["epoch"] == result.best_epoch else ""
        lines.append(
            f"{r['epoch']:>5}  {_fmt(r.get('lr'), '.3e'):>9}  {_fmt(r.get('train/loss'), '.4f'):>8}  "
            f"{_fmt(r.get('val/loss'), '.4f'):>8}  {_fmt(r.get('val/CER')):>7}  {_fmt(r.get('val/IER')):>6}  "
            f"{_fmt(r.get('val/DER')):>6}  {_fmt(r.get('val/SER')):>6}  {_fmt(r.get('seconds'), '.1f'):>6}{mark}"
        )
    if result.best_epoch:
        lines.append(
            f"best: epoch {result.best_epoch}, val CER {result.best_val_cer:.2f} % -> {result.best_checkpoint}"
        )
    if result.skipped_windows:
        lines.append(
            f"{result.skipped_windows} training windows left out of the loss (labels longer than the emission)"
        )
    return "\n".join(lines)
