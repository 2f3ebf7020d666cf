"""One trial of a search: a fit run with the trial's hyperparameters, its metrics and its table row.

``run_trial`` trains a trial through ``emgtf.training.train`` (the one training loop) in its
folder ``RUN/trials/trial_<id>/`` and returns the metrics KerasTuner records (the objective
``val_CER`` at the best epoch, the other reported columns, the costs, and the test CER when the
search asks for it); ``trial_row`` reads a finished trial back as a
``TrialRow``. The loop that hands trials out is
``emgtf.tuning.search.Search``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
from pathlib import Path

from emgtf import training
from emgtf.errors import EmgtfError
from emgtf.console import plain_log
from emgtf.data.splits import TEST
from emgtf.files import atomic_write_text, read_json
from emgtf.run_folder import RunFolder
from emgtf.tuning import space as search_space
from emgtf.tuning.distributed import ENV_ID
from emgtf.tuning.tables import COSTS, REPORTED, TrialRow, last_line

OBJECTIVE = "val_CER"  # what the search minimises: the trial's validation CER at its best epoch
WORKER_FILE = "worker.json"  # in a trial's folder: which tuner, host and process ran it


def active_values(hyperparameters) -> dict:
    """The values of a trial's active hyperparameters (Hyperband's ``tuner/...`` included)."""
    values = {}
    for hp in hyperparameters.space:
        if hp.name in hyperparameters.values and hyperparameters.is_active(hp):
            value = hyperparameters.values[hp.name]
            # A float step leaves binary noise (0.30000000000000004) that no one chose.
            values[hp.name] = float(f"{value:.12g}") if isinstance(value, float) else value
    for name, value in hyperparameters.values.items():
        if name.startswith("tuner/"):
            values[name] = value
    return values


def run_trial(search, trial) -> dict:
    """Trains ``trial`` of ``search`` (a ``Search``: its trial configs,
    folders, callbacks and log) through ``emgtf.training.train``; returns its metrics at its best
    epoch. A configuration that cannot train raises KerasTuner's ``FailedTrialError`` (not retried)."""
    import keras
    import keras_tuner
    from omegaconf import OmegaConf

    values = active_values(trial.hyperparameters)
    option, hp_overrides = search.space.to_overrides(values)
    cfg = search.trial_base_config(option).copy()
    trial_dir = search.trial_dir(trial.trial_id)
    resume = RunFolder(trial_dir).can_resume()

    epochs = values.get("tuner/epochs")
    if epochs is not None:  # Hyperband: this round's epochs, continuing an earlier trial's run
        hp_overrides["trainer.epochs"] = int(epochs)
        previous = values.get("tuner/trial_id")
        if previous and not resume:
            resume = continue_from(search, str(previous), trial_dir)
    if trial_dir.exists() and not resume and any(trial_dir.iterdir()):
        search.log(f"emgtf.tune: trial {trial.trial_id}: no epoch had finished; starting it again")
        shutil.rmtree(trial_dir)

    OmegaConf.set_struct(cfg, False)
    cfg.resume = resume
    # The trial's identity travels in its config: into its config.yaml, and into W&B (group).
    cfg.trial = {
        "search": search.name,
        "id": str(trial.trial_id),
        "hyperparameters": {k: v for k, v in values.items() if not k.startswith("tuner/")},
    }
    OmegaConf.set_struct(cfg, True)
    shown = search_space.summarize_values(values)
    search.log(f"emgtf.tune: trial {trial.trial_id}{' (continued)' if resume else ''} -> {trial_dir}: {shown}")
    search.ran_here.append(str(trial.trial_id))
    keras.backend.clear_session()  # a long search must not pile up every trial's graphs
    try:
        result = training.train(cfg, run_dir=trial_dir, hp_overrides=hp_overrides,
                                extra_callbacks=search.callbacks, wandb_session=search.wandb,
                                log=plain_log(search.log))
    except EmgtfError as e:
        # A configuration this trial cannot train (or a diverged run): failed, not retried.
        raise keras_tuner.errors.FailedTrialError(str(e)) from None
    finally:
        if trial_dir.is_dir():
            worker = {"tuner_id": os.environ.get(ENV_ID, "tuner0"), "host": socket.gethostname(), "pid": os.getpid()}
            atomic_write_text(trial_dir / WORKER_FILE, json.dumps(worker) + "\n")
    if result.best_epoch is None or not math.isfinite(result.best_val_cer):
        raise keras_tuner.errors.FailedTrialError("no epoch finished validation")
    best = next(r for r in result.history if r["epoch"] == result.best_epoch)
    metrics = {OBJECTIVE: float(result.best_val_cer), "best_epoch": float(result.best_epoch),
               "epochs": float(result.epochs_completed)}
    for name in REPORTED[1:]:
        column = name.replace("val_", "val/") if name.startswith("val_") else "train/loss"
        if column in best:
            metrics[name] = float(best[column])
    metrics["params"] = float(result.parameters)
    metrics["train_s"] = float(sum(r.get("seconds") or 0.0 for r in result.history))
    if search.settings["test"] and result.best_checkpoint is not None:
        metrics["test_CER"] = checkpoint_test_cer(result.best_checkpoint, cfg, log=search.log)
    return metrics


def checkpoint_test_cer(checkpoint: Path, cfg, *, log=None) -> float:
    """The test-split CER of a trial's best checkpoint, decoded as its fit config says; ``log`` (one
    argument) hears the evaluation."""
    from emgtf.inference.evaluation import evaluate_checkpoint

    report, _ = evaluate_checkpoint(checkpoint, part=TEST, decoder_cfg=cfg.decoder, overwrite=True,
                                    log=plain_log(log))
    return float(report["overall"]["CER"])


def continue_from(search, previous: str, trial_dir: Path) -> bool:
    """Hyperband: start a trial from trial ``previous``'s last epoch (its files copied over)."""
    source = RunFolder(search.trial_dir(previous))
    if not source.can_resume():
        search.log(f"emgtf.tune: warning: trial {previous}'s run folder {source.path} is not here; "
                   "training from scratch")
        return False
    if trial_dir.exists():
        shutil.rmtree(trial_dir)
    trial_dir.mkdir(parents=True)
    target = RunFolder(trial_dir)
    for name in ("last", "status", "best", "history"):
        if getattr(source, name).is_file():
            shutil.copyfile(getattr(source, name), getattr(target, name))
    return True


def trial_row(trial, run_dir: Path) -> TrialRow:
    """KerasTuner's record of ``trial`` (run in ``run_dir``) as a row of the trials table."""
    status = str(getattr(trial.status, "value", trial.status))
    metrics = {}
    for name in (*REPORTED, *COSTS, "best_epoch", "epochs"):
        if trial.metrics.exists(name):
            metrics[name] = trial.metrics.get_last_value(name)
    completed = status == "COMPLETED" and OBJECTIVE in metrics
    worker_file = run_dir / WORKER_FILE
    worker = read_json(worker_file).get("tuner_id") if worker_file.is_file() else None
    values = active_values(trial.hyperparameters)
    return TrialRow(
        trial_id=str(trial.trial_id),
        status=status if completed or status != "COMPLETED" else "INVALID",
        val_cer=float(metrics[OBJECTIVE]) if completed else None,
        metrics=metrics,
        best_epoch=int(metrics["best_epoch"]) if "best_epoch" in metrics else None,
        epochs=int(metrics["epochs"]) if "epochs" in metrics else None,
        hyperparameters=values,
        run_dir=run_dir,
        worker=worker,
        message=None if completed else last_line(trial.message),
    )
