"""The training loop: one Keras ``fit`` of a config, used by ``python -m emgtf.fit`` and by the tuner.

What one run does (``train(cfg)``):

- windows of the train split (``trainer.window_length`` samples plus ``trainer.padding`` of
  context, random jitter inside the stride, raw-EMG ``augment``) go through ``make_dataset``;
  a numpy step in the pipeline adds each window's emission length (``emgtf.models.emission_lengths``
  of the model being trained, so any family works) in front of its labels, the ``y_true`` of
  ``emgtf.models.ctc.CTCLoss``. A window whose labels cannot be aligned to its frames gets emission
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
  each, see ``_replay_epochs``). Same seed, same machine: the same history, resumed or not.

Files in the run folder (``emgtf.run_folder.RunFolder`` names them): ``config.yaml``
(resolved), ``history.csv``, ``best.keras``, ``last.keras``, ``last.json``, ``tensorboard/``
(scalars; the validation confusion matrix as an image with ``logger.tensorboard_images``).

The steps, in ``train``: check the config and the data (before TensorFlow is set up), settle a
``RunPlan``, build the model, claim the run folder, then ``_train_in``: datasets, compile,
resume, callbacks, fit, result. Messages go to the plan's ``log`` (``emgtf.console``).
"""

from __future__ import annotations

import importlib.util
import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from emgtf import config as config_lib
from emgtf import interrupts, models
from emgtf.console import Log, discard
from emgtf.data import data_errors, make_dataset
from emgtf.data.session import check_scored_sessions
from emgtf.data.splits import TEST, VAL, Split, load_split
from emgtf.errors import EmgtfError
from emgtf.files import atomic_write_text, read_json
from emgtf.inference.checkpoints import check_family, load_checkpoint
from emgtf.models import trainable_parameters
from emgtf.models.ctc import CTCLoss
from emgtf.run_folder import RunFolder
from emgtf.training import wandb_logging
from emgtf.training.callbacks import (
    Checkpoints,
    DivergenceGuard,
    History,
    LearningRateLog,
    RunState,
    StopOnInterrupt,
    Validation,
    seed_generator_states,
)
from emgtf.training.config_checks import check_training_config, check_window_fits
from emgtf.training.distribute import Distribution
from emgtf.training.history import summary_table
from emgtf.training.optimizers import make_optimizer
from emgtf.training.run_dir import claim_run_dir
from emgtf.training.runtime import jit_compile, setup_runtime
from emgtf.training.schedules import make_schedule
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
    data_root: Path | None = None  # the data root, resolved (as config.yaml saves it)
    split: str | None = None  # the split as the config names it (as config.yaml saves it)
    test_sessions: int = 0  # sessions in the split's test part


@dataclass(frozen=True)
class RunPlan:
    """What ``train`` settles before the model is built: the checked config and what was read
    from it, the devices, and who hears about the run. Every step of the run reads it."""

    cfg: DictConfig
    family: str
    hp: dict
    root: Path  # the data root, resolved
    split: Split
    split_spec: str  # as the config names it (saved back into config.yaml)
    distribution: Distribution
    jit_compile: bool = False  # XLA-compiled steps (trainer.jit_compile, resolved for the backend)
    extra_callbacks: tuple = ()
    wandb_session: object = None  # a WandbSession shared by a search's trials, or None
    log: Log = discard

    @property
    def trainer(self):
        return self.cfg.trainer


def _datasets(plan: RunPlan, packer: TargetPacker):
    """(training pairs, validation windows) of the plan's split."""
    cfg, t, distribution = plan.cfg, plan.trainer, plan.distribution
    common = dict(window_length=int(t.window_length), padding=tuple(int(p) for p in t.padding))
    augment = config_lib.to_container(cfg.augment) if cfg.get("augment") is not None else None
    train = make_dataset(
        [str(p) for p in plan.split.train],
        stride=t.get("stride"),
        jitter=bool(t.jitter),
        batch_size=distribution.pipeline_batch(int(t.batch_size)),
        shuffle=True,
        seed=int(cfg.seed),
        augment=augment,
        fraction=float(t.get("fraction", 1.0)),
        # XLA compiles one program per batch shape: no odd-sized last batch when it is on; with
        # several replicas every replica gets a full batch at every step.
        drop_remainder=plan.jit_compile or distribution.replicas > 1,
        shard=distribution.shard(),
        **common,
    )
    # Validation windows are the training windows without jitter, shuffling or augmentation.
    val = make_dataset([str(p) for p in plan.split.val], batch_size=int(t.val_batch_size), **common)
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
    log: Log | None = None,
) -> TrainResult:
    """Trains the model ``cfg`` describes (see the module docstring) and returns the result.

    ``run_dir`` overrides ``cfg.run_dir``; ``extra_callbacks`` run after emgtf's own (so they see
    ``val_CER`` in the logs); ``hp_overrides`` sets config values for this run (see
    ``emgtf.config.apply_hp_overrides``); ``wandb_session`` is the process's
    ``WandbSession`` (a search shares one across its trials);
    ``log`` hears the run's progress, warnings and end-of-run table (None: nothing is said; the fit
    command passes its console, see ``emgtf.console``). Raises ``TrainingDiverged`` on a NaN loss.
    """
    cfg = config_lib.apply_hp_overrides(cfg, hp_overrides)
    if run_dir is not None:
        cfg = cfg.copy()
        cfg.run_dir = str(run_dir)
    config_lib.check_complete(cfg)
    check_training_config(cfg)
    family, hp = config_lib.model_spec(cfg)
    if cfg.get("checkpoint") is not None and not cfg.resume:
        check_family(cfg.checkpoint, family)
    root, split_spec = config_lib.resolve_data(cfg.data)
    split = load_split(split_spec, root)
    if not split.train or not split.val:
        raise EmgtfError(f"split '{split.name}' needs train and val sessions to train")
    check_scored_sessions(split.val, VAL)
    check_scored_sessions(split.test, TEST)  # checked now, not after training, at the test evaluation

    # Config and file mistakes are reported above, before TensorFlow is set up (seconds).
    distribution = setup_runtime(cfg)
    plan = RunPlan(cfg, family, hp, root, split, split_spec, distribution, jit_compile(cfg.trainer),
                   tuple(extra_callbacks), wandb_session, log or discard)
    with interrupts.deferred(), distribution.hosts_guard():
        result = _train_on(plan)
    distribution.leave()
    return result


def _train_on(plan: RunPlan) -> TrainResult:
    """``train`` once the devices are set up: the model, the run folder, the run."""
    cfg, distribution = plan.cfg, plan.distribution
    resume = bool(cfg.resume)
    distribution.check_same_on_all_hosts(cfg)

    # The model is built (in memory only) before the run folder is claimed, so that a model that
    # cannot fit the window leaves no folder behind. Under several devices its variables are the
    # engine's (mirrored on every replica), so it is built in the engine's scope.
    with distribution.scope():
        model = models.build(plan.family, **plan.hp)
    check_window_fits(model, cfg)
    start_from = cfg.get("checkpoint")
    if start_from is not None and not resume:
        _load_start_weights(model, start_from, plan.family)

    if not distribution.chief:
        return _train_as_worker(plan, model)
    claim = claim_run_dir(cfg.run_dir, resume=resume, family=plan.family,
                          log=lambda message: plan.log(message, warning=True))
    try:
        if resume and not claim.resume and start_from is not None:
            # resume=true on a run that died before its first checkpoint starts it afresh: from
            # the weights it was started from, as the fresh fit would have.
            _load_start_weights(model, start_from, plan.family)
            plan.log(f"starting from the weights of checkpoint {start_from} (the run's checkpoint=)",
                     warning=True)
        with distribution.scope():
            result = _train_in(plan, model, claim.path, resume=claim.resume, source=claim.path)
    except BaseException:
        claim.release(discard=True)  # a folder this run created and never wrote to goes again
        raise
    claim.release()
    return result


def _load_start_weights(model, checkpoint, family: str) -> None:
    """``model`` gets the weights of ``checkpoint`` (fine-tuning's start, un-sharing the hands of a
    shared-hands checkpoint); one line if they do not fit."""
    source = load_checkpoint(checkpoint, family)
    try:
        models.initialize_from(model, source)
    except ValueError as e:
        raise EmgtfError(
            f"checkpoint {checkpoint} does not fit the model.* hyperparameters "
            f"({str(e).splitlines()[0]})"
        ) from None
    except EmgtfError as e:  # un-sharing the hands of a checkpoint that differs otherwise
        raise EmgtfError(f"checkpoint {checkpoint}: {e}") from None
    del source


def _train_as_worker(plan: RunPlan, model) -> TrainResult:
    """A host other than the chief: the same steps (the engine needs every host at every save
    and collective), its files in a temporary folder that goes at the end; a resumed run starts
    from the chief's run folder, which every host must see."""
    import shutil
    import tempfile

    cfg = plan.cfg
    source = Path(str(cfg.run_dir)).expanduser() if cfg.run_dir is not None else None
    resume = bool(cfg.resume) and source is not None and RunFolder(source).can_resume()
    scratch = Path(tempfile.mkdtemp(prefix="emgtf-worker-"))
    try:
        with plan.distribution.scope():
            result = _train_in(plan, model, scratch, resume=resume, source=source)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result.chief = False
    result.best_checkpoint = result.last_checkpoint = None
    return result


def _train_in(plan: RunPlan, model, path: Path, *, resume: bool, source) -> TrainResult:
    """The run itself, writing into the claimed (locked) folder ``path`` (a temporary one on a
    host other than the chief), resuming from the run folder ``source``."""
    if resume:
        check_family(RunFolder(source).last, plan.family)
    packer = TargetPacker(model)
    train_ds, val_ds = _datasets(plan, packer)
    steps = _steps_per_epoch(plan, train_ds)
    loss = _compile(plan, model, steps)
    state = RunState(run_dir=path)
    initial_epoch = _resume(model, RunFolder(source), state, train_ds, packer, steps) if resume else 0
    saved = saved_config(plan.cfg, root=plan.root, split=plan.split_spec, run_dir=path)
    atomic_write_text(RunFolder(path).config, OmegaConf.to_yaml(saved))
    callbacks, wandb_logger = _callbacks(plan, model, path, state, val_ds, loss, steps, resume=resume)
    _fit(plan, model, path, train_ds, steps, callbacks, initial_epoch, state, wandb_logger)
    return _result(plan, model, path, state, packer, initial_epoch)


def _steps_per_epoch(plan: RunPlan, train_ds) -> int:
    """Training steps per epoch (the same on every host); one line if the split gives none."""
    distribution = plan.distribution
    steps = distribution.steps(int(train_ds.cardinality()))
    distribution.check_same_on_all_hosts(plan.cfg, steps)
    if steps <= 0:
        if distribution.replicas > 1:
            raise EmgtfError(
                f"the training split gave no full step: a step of {distribution.replicas} devices "
                f"takes {int(plan.trainer.batch_size) * distribution.replicas} windows "
                "(trainer.batch_size is per device)")
        raise EmgtfError("the training split gave no batches (sessions shorter than trainer.window_length?)")
    return steps


def _compile(plan: RunPlan, model, steps: int):
    """Compiles ``model`` with the CTC loss and the optimizer on its schedule; returns the loss."""
    cfg = plan.cfg
    schedule = make_schedule(
        cfg.schedule, peak=float(cfg.optimizer.learning_rate), epochs=int(cfg.trainer.epochs),
        steps_per_epoch=steps,
    )
    loss = CTCLoss()
    model.compile(optimizer=make_optimizer(cfg.optimizer, schedule), loss=loss, jit_compile=plan.jit_compile)
    return loss


def _resume(model, source: RunFolder, state, train_ds, packer: TargetPacker, steps: int) -> int:
    """Continues the run in ``source``: weights, optimizer and generator states, the history and
    best epoch so far, the data streams replayed; returns the epochs it had completed."""
    initial_epoch = _restore(model, source.path, steps)
    state.history = [r for r in source.read_history(missing_ok=True) if r["epoch"] <= initial_epoch]
    validated = [r for r in state.history if "val/CER" in r]
    if validated:
        best = min(validated, key=lambda r: (r["val/CER"], r.get("val/loss", math.inf)))
        state.best_val_cer, state.best_epoch = best["val/CER"], int(best["epoch"])
        state.best_val_loss = best.get("val/loss", math.inf)
    _replay_epochs(train_ds, initial_epoch, packer)
    return initial_epoch


def _callbacks(plan: RunPlan, model, path: Path, state, val_ds, loss, steps: int, *, resume: bool):
    """emgtf's callbacks in the order they must run (see ``emgtf.training.callbacks``), then the
    loggers and the caller's; returns them and the W&B logger (None without W&B)."""
    import keras

    cfg, distribution = plan.cfg, plan.distribution
    callbacks = [
        StopOnInterrupt(),
        DivergenceGuard(state),
        LearningRateLog(state),
        Validation(val_ds, loss, state, forward=distribution.forward(model)),
        History(state),
        Checkpoints(state, {"steps_per_epoch": steps, "family": plan.family}),
    ]
    if distribution.chief and cfg.logger.get("tensorboard", False) and _tensorboard_available(plan.log):
        logs = RunFolder(path).tensorboard
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(logs), write_graph=False, profile_batch=0))
        if cfg.logger.get("tensorboard_images", False):
            from emgtf.training.tensorboard_figures import TensorBoardFigures  # loads matplotlib

            callbacks.append(TensorBoardFigures(logs, state))
    # W&B (logger=wandb) must never stop a run: wandb_logging warns and goes on without it.
    # A fit's W&B notices speak through its log; a search's session was made by the search.
    session = plan.wandb_session or wandb_logging.WandbSession(None if plan.log is discard else plan.log)
    wandb_run = (wandb_logging.start_run(cfg, path, resume=resume, session=session)
                 if distribution.chief else None)
    wandb_logger = wandb_logging.WandbLogger(wandb_run, state) if wandb_run is not None else None
    if wandb_logger is not None:
        callbacks.append(wandb_logger)
    callbacks.extend(plan.extra_callbacks)
    return callbacks, wandb_logger


def _fit(plan: RunPlan, model, path: Path, train_ds, steps: int, callbacks, initial_epoch: int, state,
         wandb_logger) -> None:
    """``model.fit`` from ``initial_epoch`` to ``trainer.epochs``, its known failures as one line."""
    distribution, epochs = plan.distribution, int(plan.trainer.epochs)
    where = f"run folder {path}" if distribution.chief else (
        f"host {distribution.pipeline} of {distribution.pipelines} (the chief writes the run folder)")
    devices = (f", {distribution.replicas} devices ({distribution.kind}), global batch "
               f"{int(plan.trainer.batch_size) * distribution.replicas}" if distribution.replicas > 1 else "")
    compiled = ", XLA" if model.jit_compile else ""
    plan.log(f"{plan.family} ({model.count_params():,} parameters), {steps} steps per epoch{devices}"
             f"{compiled}, epochs {initial_epoch + 1}..{epochs}, {where}")
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
                    verbose=_verbose(plan.cfg),
                    shuffle=False,  # the dataset shuffles itself, reproducibly per epoch
                )
        else:
            plan.log(f"{path} already has {initial_epoch} epochs (trainer.epochs={epochs})")
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
            plan.log(f"\ninterrupted; continue with: python -m emgtf.fit resume=true run_dir={path}",
                     warning=True)
        raise
    finally:
        if wandb_logger is not None:
            wandb_logger.close(exit_code=0 if sys.exc_info()[0] is None else 1)


def _result(plan: RunPlan, model, path: Path, state, packer: TargetPacker, initial_epoch: int) -> TrainResult:
    """The ``TrainResult`` of the finished fit (the chief logs its table); raises
    ``TrainingDiverged`` if the loss went NaN."""
    if packer.skipped:
        plan.log(f"{packer.skipped} training windows were left out of the loss "
                 "(more labels than emitted frames)", warning=True)
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
        data_root=plan.root,
        split=plan.split_spec,
        test_sessions=len(plan.split.test),
    )
    if plan.distribution.chief:
        plan.log(summary_table(result), prefix=False)
    return result


def _restore(model, path: Path, steps_per_epoch: int) -> int:
    """Loads weights and optimizer state from ``last.keras`` (and the random-generator states from
    ``last.json``); returns the epochs it completed."""
    import keras

    folder = RunFolder(path)
    model.optimizer.build(model.trainable_variables)
    try:
        model.load_weights(folder.last)
    except ValueError as e:
        raise EmgtfError(
            f"{folder.last} does not fit the configured model ({str(e).splitlines()[0]})"
        ) from None
    status = read_json(folder.status)
    states = status.get("seed_generators")
    variables = seed_generator_states(model)
    if states is not None and len(states) == len(variables):
        for variable, value in zip(variables, states):
            variable.assign(np.asarray(value, dtype=variable.dtype))
    else:
        warnings.warn(f"{folder.status}: no random-generator states for this model; the resumed "
                      "run's SpecAugment and dropout draws will differ from an uninterrupted run's",
                      stacklevel=2)
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
        raise EmgtfError(f"resume: {folder.status} is missing or unreadable")
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


def _tensorboard_available(log: Log) -> bool:
    if importlib.util.find_spec("tensorboard") is None:
        # TensorFlow no longer pulls TensorBoard in; a missing logger must not stop a run.
        log("warning: the tensorboard package is not installed, so no TensorBoard logs "
            "(pip install tensorboard, or logger=none)", warning=True)
        return False
    return True
