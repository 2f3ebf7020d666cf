"""Weights & Biases logging of fit runs and tune trials (``logger=wandb``).

A run logs its resolved config (a tune trial's includes ``trial.hyperparameters``), one row per
epoch (``train/loss``, ``val/loss``, ``val/CER``, ``val/IER``, ``val/DER``, ``val/SER``, ``lr``; the
step is the epoch), a table of sample decodings (prediction beside target) after each validation,
``best/val_CER`` and ``best/epoch`` in its summary, and at the end the best checkpoint as a
``model`` artifact and the substitution confusion matrix of the last sample decodings as an image
(``val/confusion``). The trials of one search share a W&B group (the search's name) and job type
``trial``.

W&B must never cost a training run: without an API key an online run is written offline instead
(``wandb sync`` uploads it later) and the user is told once; if W&B fails to start or to log
(no network, a bad key, a full disk), a warning is printed and training goes on without it.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import keras

from emgtf import config as config_lib
from emgtf.console import Log, console_log
from emgtf.errors import EmgtfError, first_line
from emgtf.files import read_json
from emgtf.run_folder import BEST_FILE, RunFolder

# Keras logs key -> W&B key (history.csv's column names).
KEYS = {
    "loss": "train/loss",
    "val_loss": "val/loss",
    "val_CER": "val/CER",
    "val_IER": "val/IER",
    "val_DER": "val/DER",
    "val_SER": "val/SER",
    "val_rendered_CER": "val/rendered_CER",
    "learning_rate": "lr",
}
SAMPLES_KEY = "val/samples"
CONFUSION_KEY = "val/confusion"

# W&B's own environment variables, as W&B documents them: when one is set it wins over the logger
# config, as WANDB_MODE does.
ENVIRONMENT = {
    "project": "WANDB_PROJECT",
    "entity": "WANDB_ENTITY",
    "name": "WANDB_NAME",
    "group": "WANDB_RUN_GROUP",
    "job_type": "WANDB_JOB_TYPE",
    "tags": "WANDB_TAGS",
    "dir": "WANDB_DIR",
}


class WandbWarning(UserWarning):
    """W&B could not start or log; training goes on without it."""


def _warn(message: str) -> None:
    warnings.warn(message, WandbWarning, stacklevel=3)


def has_credentials() -> bool:
    """Whether an API key (or identity token) for the configured W&B host is set up."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    try:
        from wandb.sdk.lib.wbauth import read_netrc_auth

        return bool(read_netrc_auth(host=host))
    except Exception:  # the helper moves between wandb versions; fall back to ~/.netrc itself
        import netrc
        from urllib.parse import urlparse

        try:
            return netrc.netrc().authenticators(urlparse(host).hostname or host) is not None
        except (OSError, netrc.NetrcParseError):
            return False


def run_settings(cfg, run_dir: Path) -> dict | None:
    """The ``wandb.init`` arguments of a run (None when W&B is off for it)."""
    wandb_cfg = cfg.logger.get("wandb") if cfg.get("logger") is not None else None
    if not wandb_cfg or not wandb_cfg.get("enabled", False):
        return None
    # WANDB_MODE in the environment wins, so a CI or a cluster job can force offline / disabled.
    mode = os.environ.get("WANDB_MODE") or wandb_cfg.get("mode") or "offline"
    if mode not in ("online", "offline", "disabled", "dryrun", "run"):
        raise EmgtfError(f"logger.wandb.mode must be online, offline or disabled, got {mode!r}")
    mode = {"dryrun": "offline", "run": "online"}.get(mode, mode)
    if mode == "disabled":
        return None
    trial = cfg.get("trial")
    group = wandb_cfg.get("group") or (trial.get("search") if trial is not None else None)
    job_type = wandb_cfg.get("job_type") or ("trial" if trial is not None else "fit")
    if wandb_cfg.get("name"):
        name = str(wandb_cfg.name)
    elif trial is not None:
        name = f"{trial.get('search')}/trial_{trial.get('id')}"
    else:
        name = run_dir.name
    tags = list(wandb_cfg.get("tags") or [])
    return {
        "project": wandb_cfg.get("project") or "emgtf",
        "entity": wandb_cfg.get("entity"),
        "name": name,
        "group": str(group) if group else None,
        "job_type": job_type,
        "tags": tags or None,
        "mode": mode,
        "dir": str(run_dir),
        "config": config_lib.to_container(cfg),
    } | _from_environment()


def _from_environment() -> dict:
    # Passed explicitly rather than left to wandb.init: wandb reads some of them only once per
    # process, at its first run.
    values = {key: os.environ[variable] for key, variable in ENVIRONMENT.items() if os.environ.get(variable)}
    if "tags" in values:
        values["tags"] = [tag.strip() for tag in values["tags"].split(",") if tag.strip()]
    return values


class WandbSession:
    """What one process (a fit, or a search's many trials) knows about W&B: what it has told the
    user already, and whether W&B failed to start online (later runs then go offline at once).

    ``log`` (``emgtf.console``) takes its notices, as warnings. None: emgtf's console
    (``emgtf: ...`` on stderr), because a notice that runs are kept offline must reach the person
    whichever library code started the run; the fit command passes its own log.
    """

    def __init__(self, log: Log | None = None):
        self.log = log if log is not None else console_log("emgtf")
        self.said: set[str] = set()
        self.online_failed = False

    def say_once(self, key: str, message: str) -> None:
        if key not in self.said:
            self.said.add(key)
            self.log(message, warning=True)

    def start_run(self, cfg, run_dir, *, resume: bool = False):
        """A started ``wandb`` run for this fit run or trial, or None (off, or W&B failed: warned).

        ``resume``: continue the W&B run recorded in ``run_dir/wandb.json`` (same id, same steps).
        """
        return start_run(cfg, run_dir, resume=resume, session=self)


def start_run(cfg, run_dir, *, resume: bool = False, session: WandbSession | None = None):
    """A started ``wandb`` run for this fit run or trial, or None (off, or W&B failed: warned).

    ``resume``: continue the W&B run recorded in ``run_dir/wandb.json`` (same id, same steps).
    ``session``: the process's ``WandbSession`` (a fresh one if None).
    """
    session = session if session is not None else WandbSession()
    run_dir = Path(run_dir)
    settings = run_settings(cfg, run_dir)
    if settings is None:
        return None
    try:
        import wandb
    except ImportError:
        _warn("logger.wandb: the wandb package is not installed (pip install wandb); no W&B logging")
        return None
    if settings["mode"] == "online" and (session.online_failed or not has_credentials()):
        settings["mode"] = "offline"
        if not session.online_failed:
            session.say_once("no-key", "W&B: no API key (run `wandb login` or set WANDB_API_KEY), so runs are "
                                "logged offline; upload them later with `wandb sync <run folder>/wandb/offline-run-*`")
    if settings["mode"] == "offline":
        where = os.environ.get("WANDB_DIR") or run_dir
        session.say_once("offline", f"W&B: logging offline under {where}/wandb (and the other run folders); "
                             "upload with `wandb sync <run folder>/wandb/offline-run-*`")
    folder = RunFolder(run_dir)
    previous = read_json(folder.wandb) if resume else {}
    if previous.get("id"):
        settings.update(id=previous["id"], resume="allow")
    try:
        run = _init(wandb, settings)
    except Exception as e:  # no network, bad key, server error: W&B must not stop training
        if settings["mode"] != "online":
            _warn(f"W&B failed to start ({first_line(e)}); training goes on without W&B")
            return None
        session.online_failed = True
        _warn(f"W&B could not start online ({first_line(e)}); logging offline instead "
              "(upload later with `wandb sync`)")
        settings["mode"] = "offline"
        try:
            run = _init(wandb, settings)
        except Exception as e2:
            _warn(f"W&B failed to start ({first_line(e2)}); training goes on without W&B")
            return None
    try:
        record = {"id": run.id, "mode": settings["mode"], "group": settings["group"], "dir": str(run.dir)}
        folder.wandb.write_text(json.dumps(record) + "\n")
    except OSError as e:
        _warn(f"could not write {folder.wandb} ({e}); a resumed run will start a new W&B run")
    return run


def _init(wandb, settings: dict):
    kwargs = {k: v for k, v in settings.items() if v is not None}
    # One run at a time per process (a search trains its trials one after another).
    kwargs["settings"] = wandb.Settings(silent=kwargs["mode"] == "offline")
    return wandb.init(reinit="finish_previous", **kwargs)


class WandbLogger(keras.callbacks.Callback):
    """Logs a run to W&B: epoch rows, sample decodings, the best val CER, the best checkpoint.

    It must come after emgtf's own callbacks (it reads ``val_CER`` etc. from the logs). The sample
    decodings come from ``state.samples`` (``[(prediction, target), ...]``, set by the validation
    callback), the checkpoint from ``state.best_checkpoint``. Any W&B error is warned about once
    and ends the logging, never the training. Call ``close`` when the run ends, however it ends.
    """

    def __init__(self, run, state, *, max_samples: int = 8):
        super().__init__()
        self.run, self.state, self.max_samples = run, state, max_samples
        self.best = math.inf
        self.failed = False
        self.last_epoch = None

    def _guard(self, what: str, fn, *args, **kwargs):
        if self.failed or self.run is None:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            self.failed = True
            _warn(f"W&B {what} failed ({first_line(e)}); training goes on without W&B logging")
            return None

    def on_epoch_end(self, epoch, logs=None):
        if getattr(self.state, "diverged", None) or logs is None:
            return
        self._guard("logging", self._log_epoch, epoch + 1, dict(logs))

    def _log_epoch(self, epoch: int, logs: dict) -> None:
        import wandb

        row = {KEYS.get(k, k): float(v) for k, v in logs.items() if _scalar(v)}
        row["epoch"] = epoch
        samples = getattr(self.state, "samples", None)
        if samples:
            table = wandb.Table(columns=["epoch", "prediction", "target"])
            for prediction, target in list(samples)[: self.max_samples]:
                table.add_data(epoch, prediction, target)
            row[SAMPLES_KEY] = table
        self.run.log(row, step=epoch)
        self.last_epoch = epoch
        cer = logs.get("val_CER")
        if cer is not None and float(cer) < self.best:
            self.best = float(cer)
            self.run.summary["best/val_CER"] = self.best
            self.run.summary["best/epoch"] = epoch

    def on_train_end(self, logs=None):
        self._guard("checkpoint upload", self._log_checkpoint)
        self._guard("confusion matrix", self._log_confusion)

    def _log_confusion(self) -> None:
        """The substitution confusion matrix of the last validation's sample decodings (the
        windows of the samples table), as an image at the last epoch's step."""
        samples = getattr(self.state, "samples", None)
        if not samples or self.last_epoch is None:
            return
        import wandb

        from emgtf.reporting.error_figures import val_confusion_image

        image, title = val_confusion_image(list(samples), self.last_epoch)
        self.run.log({CONFUSION_KEY: wandb.Image(image, caption=title)}, step=self.last_epoch)

    def _log_checkpoint(self) -> None:
        import wandb

        checkpoint = Path(self.state.best_checkpoint)
        if not checkpoint.is_file():
            return
        run_dir = Path(self.state.run_dir)
        metadata = {"val_CER": self.run.summary.get("best/val_CER"), "epoch": self.run.summary.get("best/epoch")}
        artifact = wandb.Artifact(_artifact_name(self.run), type="model", metadata=metadata,
                                  description=f"best checkpoint of {run_dir} (lowest val CER)")
        artifact.add_file(str(checkpoint), name=BEST_FILE)
        config = RunFolder(run_dir).config
        if config.is_file():
            artifact.add_file(str(config), name=config.name)
        self.run.log_artifact(artifact, aliases=["best", "latest"])

    def close(self, exit_code: int = 0) -> None:
        """Finishes the W&B run (writes it out); safe to call more than once."""
        run, self.run = self.run, None
        if run is None:
            return
        try:
            run.finish(exit_code=exit_code)
        except Exception as e:
            _warn(f"W&B could not finish its run ({first_line(e)})")


def _artifact_name(run) -> str:
    # Artifact names allow letters, digits, dashes, underscores and dots.
    base = "".join(c if c.isalnum() or c in "-_." else "-" for c in (run.name or run.id))
    return f"model-{base}-{run.id}"


def _scalar(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
