"""The training loop: one Keras ``fit`` of a config, used by ``python -m emgtf.fit`` and by the tuner.

What one run does (``train(cfg)``):

- windows of the train split (``trainer.window_length`` samples plus ``trainer.padding`` of
  context, random jitter inside the stride, raw-EMG ``augment``) go through ``make_dataset``;
  a numpy step in the pipeline adds each window's emission length (``emgtf.models.emission_lengths``
  of the model being trained, so any family works) in front of its labels, the ``y_true`` of
  :class:`emgtf.models.ctc.CTCLoss`. A window whose labels cannot be aligned to its frames gets emission
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
``last.keras``, ``last.json``, ``tensorboard/`` (scalars; the validation confusion matrix as
an image with ``logger.tensorboard_images``).
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from emgtf import config as config_lib
from emgtf import interrupts
from emgtf.errors import EmgtfError
from emgtf.files import atomic_write_text, read_json
from emgtf.inference.checkpoints import check_family, load_checkpoint
from emgtf.models import trainable_parameters
from emgtf.training.history import read_history, summary_table
from emgtf.training.config_checks import check_training_config, check_window_fits
from emgtf.training.run_dir import claim_run_dir
from emgtf.training.optimizers import make_optimizer
from emgtf.training.runtime import jit_compile
from emgtf.training.targets import TargetPacker, training_pairs


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
    parameters: int = 0  # trainable
    chief: bool = True  # False on the other hosts of a cluster: they write no run folder


def _validate(cfg) -> None:
    check_training_config(cfg)


def _datasets(cfg, split, model, packer, distribution):
    from emgtf.data import make_dataset

    t = cfg.trainer
    common = dict(window_length=int(t.window_length), padding=tuple(int(p) for p in t.padding))
    augment = config_lib.to_container(cfg.augment) if cfg.get("augment") is not None else None
    train = make_dataset(
        [str(p) for p in split.train],
        stride=t.get("stride"),
        jitter=bool(t.jitter),
        batch_size=distribution.pipeline_batch(int(t.batch_size)),
        shuffle=True,
        seed=int(cfg.seed),
        augment=augment,
        fraction=float(t.get("fraction", 1.0)),
        # XLA compiles one program per batch shape: no odd-sized last batch when it is on; with
        # several replicas every replica gets a full batch at every step.
        drop_remainder=jit_compile(t) or distribution.replicas > 1,
        shard=distribution.shard(),
        **common,
    )
    # Validation windows are the training windows without jitter, shuffling or augmentation.
    val = make_dataset([str(p) for p in split.val], batch_size=int(t.val_batch_size), **common)
    return training_pairs(train, packer), val


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
    wandb_session=None,
) -> TrainResult:
    """Trains the model ``cfg`` describes (see the module docstring) and returns the result.

    ``run_dir`` overrides ``cfg.run_dir``; ``extra_callbacks`` run after emgtf's own (so they see
    ``val_CER`` in the logs); ``hp_overrides`` sets config values for this run (see
    :func:`emgtf.config.apply_hp_overrides`); ``wandb_session`` is the process's
    :class:`~emgtf.training.wandb_logging.WandbSession` (a search shares one across its trials). Raises :class:`TrainingDiverged` on a NaN loss.
    """
    cfg = config_lib.apply_hp_overrides(cfg, hp_overrides)
    if run_dir is not None:
        cfg = cfg.copy()
        cfg.run_dir = str(run_dir)
    config_lib.check_complete(cfg)
    _validate(cfg)
    resume = bool(cfg.resume)
    family, hp = config_lib.model_spec(cfg)
    if cfg.get("checkpoint") is not None and not resume:
        check_family(cfg.checkpoint, family)
    root, split_spec = config_lib.resolve_data(cfg.data)
    from emgtf.data.splits import load_split

    split = load_split(split_spec, root)
    if not split.train or not split.val:
        raise EmgtfError(f"split '{split.name}' needs train and val sessions to train")
    from emgtf.data.session import check_scored_sessions

    check_scored_sessions(split.val, "val")
    check_scored_sessions(split.test, "test")  # checked now, not after training, at the test evaluation

    # Config and file mistakes are reported above, before TensorFlow loads (seconds).
    from emgtf.training.runtime import setup_runtime

    distribution = setup_runtime(cfg)
    with interrupts.deferred(), distribution.hosts_guard():
        result = _train_on(cfg, distribution, family, hp, resume, root, split, split_spec,
                           extra_callbacks, wandb_session)
    distribution.leave()
    return result


def _train_on(cfg, distribution, family, hp, resume, root, split, split_spec, extra_callbacks,
              wandb_session) -> TrainResult:
    """:func:`train` once the devices are set up: the model, the run folder, the run."""
    from emgtf import models

    distribution.check_same_on_all_hosts(cfg)

    # The model is built (in memory only) before the run folder is claimed, so that a model that
    # cannot fit the window leaves no folder behind. Under several devices its variables are the
    # engine's (mirrored on every replica), so it is built in the engine's scope.
    with distribution.scope():
        model = models.build(family, **hp)
    check_window_fits(model, cfg)
    start_from = cfg.get("checkpoint")
    if start_from is not None and not resume:
        _load_start_weights(model, start_from, family)

    run = dict(family=family, split=split, root=root, split_spec=split_spec,
               extra_callbacks=extra_callbacks, wandb_session=wandb_session, distribution=distribution)
    if not distribution.chief:
        return _train_as_worker(cfg, model, **run)
    claim = claim_run_dir(cfg.run_dir, resume=resume, family=family)
    try:
        if resume and not claim.resume and start_from is not None:
            # resume=true on a run that died before its first checkpoint starts it afresh: from
            # the weights it was started from, as the fresh fit would have.
            _load_start_weights(model, start_from, family)
            print(f"emgtf.fit: starting from the weights of checkpoint {start_from} (the run's checkpoint=)",
                  file=sys.stderr, flush=True)
        with distribution.scope():
            result = _train_in(claim.path, cfg, model, resume=claim.resume, source=claim.path, **run)
    except BaseException:
        claim.release(discard=True)  # a folder this run created and never wrote to goes again
        raise
    claim.release()
    return result


def _load_start_weights(model, checkpoint, family: str) -> None:
    """``model`` gets the weights of ``checkpoint`` (fine-tuning's start, un-sharing the hands of a
    shared-hands checkpoint); one line if they do not fit."""
    from emgtf import models

    source = load_checkpoint(checkpoint, family)
    try:
        models.initialise_from(model, source)
    except ValueError as e:
        raise EmgtfError(
            f"checkpoint {checkpoint} does not fit the model.* hyperparameters "
            f"({str(e).splitlines()[0]})"
        ) from None
    except EmgtfError as e:  # un-sharing the hands of a checkpoint that differs otherwise
        raise EmgtfError(f"checkpoint {checkpoint}: {e}") from None
    del source


def _train_as_worker(cfg, model, **run) -> TrainResult:
    """A host other than the chief: the same steps (the engine needs every host at every save
    and collective), its files in a temporary folder that goes at the end; a resumed run starts
    from the chief's run folder, which every host must see."""
    import shutil
    import tempfile

    source = Path(str(cfg.run_dir)).expanduser() if cfg.run_dir is not None else None
    resume = bool(cfg.resume) and source is not None and (source / "last.keras").is_file()
    scratch = Path(tempfile.mkdtemp(prefix="emgtf-worker-"))
    try:
        with run["distribution"].scope():
            result = _train_in(scratch, cfg, model, resume=resume, source=source, **run)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result.chief = False
    result.best_checkpoint = result.last_checkpoint = None
    return result


def _train_in(path: Path, cfg, model, *, family, split, root, split_spec, resume: bool, source,
              extra_callbacks, wandb_session, distribution) -> TrainResult:
    """The run itself, writing into the claimed (locked) folder ``path`` (a temporary one on a
    host other than the chief), resuming from the run folder ``source``."""
    if resume:
        check_family(source / "last.keras", family)
    import keras

    from emgtf.training import wandb_logging
    from emgtf.training.callbacks import (
        Checkpoints,
        DivergenceGuard,
        History,
        LearningRateLog,
        RunState,
        StopOnInterrupt,
        Validation,
    )
    from emgtf.data import data_errors
    from emgtf.models.ctc import CTCLoss
    from emgtf.training.schedules import make_schedule

    packer = TargetPacker(model)
    train_ds, val_ds = _datasets(cfg, split, model, packer, distribution)
    steps = distribution.steps(int(train_ds.cardinality()))
    distribution.check_same_on_all_hosts(cfg, steps)
    if steps <= 0:
        if distribution.replicas > 1:
            raise EmgtfError(
                f"the training split gave no full step: a step of {distribution.replicas} devices "
                f"takes {int(cfg.trainer.batch_size) * distribution.replicas} windows "
                "(trainer.batch_size is per device)")
        raise EmgtfError("the training split gave no batches (sessions shorter than trainer.window_length?)")
    epochs = int(cfg.trainer.epochs)
    schedule = make_schedule(
        cfg.schedule, peak=float(cfg.optimizer.learning_rate), epochs=epochs, steps_per_epoch=steps
    )
    loss = CTCLoss()
    model.compile(
        optimizer=make_optimizer(cfg.optimizer, schedule),
        loss=loss,
        jit_compile=jit_compile(cfg.trainer),
    )

    state = RunState(run_dir=path)
    initial_epoch = 0
    if resume:
        initial_epoch = _restore(model, source, steps)
        state.history = [r for r in read_history(source / "history.csv", missing_ok=True) if r["epoch"] <= initial_epoch]
        validated = [r for r in state.history if "val/CER" in r]
        if validated:
            best = min(validated, key=lambda r: (r["val/CER"], r.get("val/loss", math.inf)))
            state.best_val_cer, state.best_epoch = best["val/CER"], int(best["epoch"])
            state.best_val_loss = best.get("val/loss", math.inf)
        _replay_epochs(train_ds, initial_epoch, packer)
    saved = saved_config(cfg, root=root, split=split_spec, run_dir=path)
    atomic_write_text(path / "config.yaml", OmegaConf.to_yaml(saved))

    callbacks = [
        StopOnInterrupt(),
        DivergenceGuard(state),
        LearningRateLog(state),
        Validation(val_ds, loss, state, forward=distribution.forward(model)),
        History(state),
        Checkpoints(state, {"steps_per_epoch": steps, "family": family}),
    ]
    if distribution.chief and cfg.logger.get("tensorboard", False) and _tensorboard_available():
        callbacks.append(
            keras.callbacks.TensorBoard(log_dir=str(path / "tensorboard"), write_graph=False, profile_batch=0)
        )
        if cfg.logger.get("tensorboard_images", False):
            from emgtf.training.tensorboard_figures import TensorBoardFigures

            callbacks.append(TensorBoardFigures(path / "tensorboard", state))
    # W&B (logger=wandb) must never stop a run: wandb_logging warns and goes on without it.
    wandb_run = (wandb_logging.start_run(cfg, path, resume=resume, session=wandb_session)
                 if distribution.chief else None)
    wandb_logger = wandb_logging.WandbLogger(wandb_run, state) if wandb_run is not None else None
    if wandb_logger is not None:
        callbacks.append(wandb_logger)
    callbacks.extend(extra_callbacks)

    where = f"run folder {path}" if distribution.chief else (
        f"host {distribution.pipeline} of {distribution.pipelines} (the chief writes the run folder)")
    devices = (f", {distribution.replicas} devices ({distribution.kind}), global batch "
               f"{int(cfg.trainer.batch_size) * distribution.replicas}" if distribution.replicas > 1 else "")
    compiled = ", XLA" if model.jit_compile else ""
    print(f"emgtf.fit: {family} ({model.count_params():,} parameters), {steps} steps per epoch{devices}"
          f"{compiled}, epochs {initial_epoch + 1}..{epochs}, {where}", flush=True)
    try:
        if initial_epoch < epochs:
            with data_errors():
                model.fit(
                    # One iterator for the whole run, re-initialising the pipeline every epoch.
                    distribution.fit_data(train_ds, steps),
                    steps_per_epoch=steps,
                    epochs=epochs,
                    initial_epoch=initial_epoch,
                    callbacks=callbacks,
                    verbose=_verbose(cfg),
                    shuffle=False,  # the dataset shuffles itself, reproducibly per epoch
                )
        else:
            print(f"emgtf.fit: {path} already has {initial_epoch} epochs (trainer.epochs={epochs})")
    except ValueError as e:
        if distribution.kind == "multi_worker" and "PerReplica" in str(e):
            # Keras 3's fit cannot take MultiWorkerMirroredStrategy's batches yet (it fails
            # before the first step); a one-line error instead of a page of tensors.
            raise EmgtfError("trainer.strategy=multi_worker: Keras 3's model.fit fails on "
                             "MultiWorkerMirroredStrategy batches before the first step (upstream bug "
                             "keras-team/keras#20585); train on one host (mirrored) for now") from None
        raise
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
        parameters=trainable_parameters(model),
    )
    if distribution.chief:
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
    from emgtf.training.callbacks import seed_generator_states

    states = read_json(path / "last.json").get("seed_generators")
    variables = seed_generator_states(model)
    if states is not None and len(states) == len(variables):
        for variable, value in zip(variables, states):
            variable.assign(np.asarray(value, dtype=variable.dtype))
    else:
        warnings.warn(f"{path / 'last.json'}: no random-generator states for this model; the resumed "
                      "run's SpecAugment and dropout draws will differ from an uninterrupted run's",
                      stacklevel=2)
    status = read_json(path / "last.json")
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


def _tensorboard_available() -> bool:
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        # TensorFlow no longer pulls TensorBoard in; a missing logger must not stop a run.
        print("emgtf.fit: warning: the tensorboard package is not installed, so no TensorBoard logs "
              "(pip install tensorboard, or logger=none)", file=sys.stderr)
        return False
    return True
