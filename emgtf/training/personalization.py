"""Personalisation (``python -m emgtf.personalize``): one fit run per user, then the per-user test table.

The emg2qwerty paper's protocol: each held-out user's model is trained on that user's own train
split with the base recipe, either starting from the generic model's weights with a fresh
optimizer (``init=finetune``) or from scratch (``init=random``); the best epoch by val CER is
tested on the user's test sessions, and the table gives mean +/- std over users
(``emgtf.inference.benchmark``).

Layout: ``<run_dir>/<user>/`` is an ordinary fit run folder of user ``<user>``, trained on the split
file ``<split_dir>/<user>.yaml`` (Meta's ``config/user/`` folder, or emgtf split files);
``<run_dir>/personalize.yaml`` is the config as started; ``<run_dir>/personalize.<part>.json`` and
``.csv`` the table. Resuming is per user: a user whose run reached ``trainer.epochs`` is skipped,
one that stopped part-way continues from its ``last.keras`` as ``resume=true`` does in fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from emgtf import config as config_lib
from emgtf.config import override_key
from emgtf.data.splits import TEST
from emgtf.console import Log, discard, unprefixed
from emgtf.errors import EmgtfError
from emgtf.files import read_json
from emgtf.inference.benchmark import decoder_configs, run_benchmark
from emgtf.inference.checkpoints import checkpoint_model_overrides
from emgtf.run_folder import BEST_FILE, RunFolder
from emgtf.training.run_dir import default_run_dir

# Keys of configs/personalize.yaml that are not part of a user's fit config.
PERSONALIZE_KEYS = ("users", "split_dir", "init", "decoders")
INITS = ("finetune", "random")
# Keys the command sets itself for each user.
PER_USER_KEYS = ("data.split", "run_dir", "resume", "checkpoint")


@dataclass
class UserRun:
    """One user's run: its split file, folder, and what this invocation did (trained, resumed,
    skipped)."""

    user: str
    split_file: Path
    run_dir: Path
    action: str = ""


def _names(cfg, key: str) -> list[str]:
    value = cfg.get(key)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, ListConfig)) or not len(value):
        raise EmgtfError(f"{key} must be a non-empty list, e.g. {key}=[user0,user1]")
    names = [str(v) for v in value]
    if len(set(names)) != len(names):
        raise EmgtfError(f"{key} lists a name twice: {names}")
    return names


def split_file_of(split_dir: Path, user: str) -> Path:
    """``<split_dir>/<user>.yaml`` (or ``.yml``); one line naming both when it is missing."""
    for suffix in (".yaml", ".yml"):
        path = split_dir / f"{user}{suffix}"
        if path.is_file():
            return path
    raise EmgtfError(f"user '{user}': no split file {split_dir / (user + '.yaml')}")


def load_config(overrides: Sequence[str]) -> tuple[DictConfig, list[str]]:
    """The personalize config and the overrides each user's fit config is composed from."""
    overrides = list(overrides)
    given_decoders = any(override_key(o) == "decoders" for o in overrides)
    # With decoders=[...], decoder.<key> overrides belong to those options (see
    # emgtf.inference.benchmark.decoder_configs), not to the fit config's decoder group.
    fit_side = [o for o in overrides if not (given_decoders and override_key(o).startswith("decoder."))]
    cfg = config_lib.compose("personalize", fit_side)
    for key in ("data.split", "resume"):
        if any(override_key(o) == key for o in overrides):
            raise EmgtfError(f"personalize sets {key} for each user itself; drop the override '{key}=...'")
    if cfg.init not in INITS:
        raise EmgtfError(f"init must be one of {', '.join(INITS)}, got {cfg.init!r}")
    if cfg.init == "finetune" and cfg.checkpoint is None:
        raise EmgtfError("init=finetune needs checkpoint=<the generic model's .keras file>")
    if OmegaConf.is_missing(cfg, "split_dir") or cfg.split_dir is None:
        raise EmgtfError("split_dir must be set: the folder of the per-user split files (<user>.yaml)")
    if not Path(str(cfg.split_dir)).expanduser().is_dir():
        raise EmgtfError(f"split_dir {cfg.split_dir} is not a folder")
    if OmegaConf.is_missing(cfg, "users"):
        raise EmgtfError("users must be set, e.g. users=[user0,user1] (split files <split_dir>/<user>.yaml)")
    _names(cfg, "users")
    rest = [o for o in fit_side if override_key(o) not in PERSONALIZE_KEYS and override_key(o) not in PER_USER_KEYS]
    return cfg, checkpoint_model_overrides(rest, cfg.checkpoint)


def _finished_epochs(path: Path) -> int:
    status = read_json(RunFolder(path).status)
    return int(status.get("epoch", 0))


def user_config(cfg: DictConfig, fit_overrides: Sequence[str], run: UserRun) -> DictConfig:
    """The fit config of one user's run: fresh (data.split, run_dir and, for finetune, the
    checkpoint set), or, for a run that has a ``last.keras``, its saved config with resume on and
    this invocation's ``trainer.epochs``."""
    folder = RunFolder(run.run_dir)
    if folder.can_resume() and folder.config.is_file():
        saved = config_lib.load_saved(folder.config)
        saved = config_lib.apply_overrides(saved, [f"trainer.epochs={int(cfg.trainer.epochs)}"])
        saved.resume = True
        saved.run_dir = str(run.run_dir)
        return saved
    if run.run_dir.exists() and any(run.run_dir.iterdir()):
        raise EmgtfError(
            f"user '{run.user}': {run.run_dir} holds a run that finished no epoch (no last.keras); "
            "remove that folder to train this user again"
        )
    checkpoint = str(cfg.checkpoint) if cfg.init == "finetune" else "null"
    return config_lib.compose(
        "fit", [*fit_overrides, f"data.split={run.split_file}", f"run_dir={run.run_dir}", f"checkpoint={checkpoint}"]
    )


def _write_or_check_started(run_dir: Path, cfg: DictConfig) -> None:
    """``personalize.yaml`` records the invocation; a resumed one must train the same way."""
    path = run_dir / "personalize.yaml"
    now = {k: config_lib.to_container(cfg)[k] for k in ("init", "checkpoint")}
    if path.is_file():
        before = config_lib.to_container(config_lib.load_saved(path))
        for key, value in now.items():
            if before.get(key) != value:
                raise EmgtfError(
                    f"{path}: the runs in {run_dir} were started with {key}={before.get(key)}, not {value}; "
                    "use another run_dir"
                )
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, path, resolve=True)


def personalize(overrides: Sequence[str], *, log: Log = discard) -> dict:
    """Trains (or resumes, or skips) each user's run, then writes the per-user test table.

    ``overrides``: the command line (see ``configs/personalize.yaml``). Returns the table document
    of ``emgtf.inference.benchmark.run_benchmark`` with ``"runs"``: ``[{user, run_dir,
    action}]`` added. ``log`` hears each user's progress, their runs' messages and the table
    (the command passes its console log).
    """
    from emgtf.training.loop import train  # imports TensorFlow

    cfg, fit_overrides = load_config(overrides)
    split_dir = Path(str(cfg.split_dir)).expanduser()
    users = _names(cfg, "users")
    runs = [UserRun(u, split_file_of(split_dir, u), Path()) for u in users]  # every file before any training
    decoders = [cfg.decoder] if cfg.decoders is None else decoder_configs(_names(cfg, "decoders"), overrides)
    run_dir = Path(str(cfg.run_dir)).expanduser() if cfg.run_dir is not None else default_run_dir("personalize")
    _write_or_check_started(run_dir, cfg)
    epochs = int(cfg.trainer.epochs)
    for run in runs:
        run.run_dir = run_dir / run.user
        done = _finished_epochs(run.run_dir)
        if done >= epochs and RunFolder(run.run_dir).best.is_file():
            run.action = "skipped"
            log(f"{run.user}: finished ({done} epochs) in {run.run_dir}; skipped")
            continue
        user_cfg = user_config(cfg, fit_overrides, run)
        run.action = "resumed" if user_cfg.resume else "trained"
        log(f"{run.user}: {'resuming' if user_cfg.resume else 'training'} "
            f"({cfg.init}) on {run.split_file} in {run.run_dir}")
        result = train(user_cfg, log=unprefixed(log))
        if result.best_checkpoint is None:
            raise EmgtfError(f"user '{run.user}': the run in {run.run_dir} left no {BEST_FILE}")

    doc, json_path, csv_path = run_benchmark(
        [(RunFolder(run.run_dir).best, run.split_file) for run in runs],
        decoders,
        root=cfg.data.root,
        part=TEST,
        output=run_dir / "personalize.test.json",
        overwrite=True,  # the command's own table, rebuilt from the runs at every invocation
        log=log,
    )
    doc["runs"] = [{"user": r.user, "run_dir": str(r.run_dir), "action": r.action} for r in runs]
    return doc
