"""A KerasTuner hyperparameter search whose trials are ``emgtf.fit`` runs (``python -m emgtf.tune``).

Each trial takes the fit config (``configs/fit.yaml`` + the command line's overrides, composed by
``configs/tune.yaml``), sets the trial's hyperparameters (a search space from ``tuner/``) and trains
it with ``emgtf.training.train``, the one training loop; the objective is the ``val_CER`` its
validation callback computes, minimised. KerasTuner's own oracles choose the values (random search,
Bayesian optimisation, Hyperband) and keep the state of the search in the run folder:

    RUN/tune.yaml, search.json, space.yaml    the search as started (resume re-reads them)
    RUN/keras_tuner/                          KerasTuner's project: oracle.json, trial_*/trial.json
    RUN/trials/trial_<id>/                    each trial's fit run folder (config.yaml, best.keras ...)
    RUN/best_trials.csv, best_trials.json     every trial, best first (hyperparameters, val CER, epochs)
    RUN/best.keras + RUN/config.yaml          the best trial's checkpoint and its fit config

``resume=true run_dir=RUN`` continues an interrupted search: finished trials are kept, the trial
that was running is continued from its ``last.keras`` (or restarted if no epoch had finished).

Distributed search uses KerasTuner's chief/worker mode: every machine runs the same command with
``KERASTUNER_ORACLE_IP`` / ``KERASTUNER_ORACLE_PORT`` set to the chief's address and its own
``KERASTUNER_TUNER_ID`` (``chief`` on the machine that serves the oracle, ``worker0``, ``worker1``
... elsewhere). The chief runs no trial; it hands trials out over gRPC and, when all are done,
writes the tables and the best checkpoint.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from emgtf import config as config_lib
from emgtf import interrupts
from emgtf.checks import is_int
from emgtf.config import override_key, parse_value, resolve_data
from emgtf.data.splits import load_split
from emgtf.errors import EmgtfError
from emgtf.files import atomic_copy, atomic_write_text, read_json
from emgtf.inference.checkpoints import load_checkpoint
from emgtf.run_folder import LOCK_FILE, RunFolder
from emgtf.training.run_dir import default_run_dir
from emgtf.training.run_lock import RunLock, check_free
from emgtf.tuning import space as search_space
from emgtf.tuning.distributed import ENV_ID, distributed_role, serve
from emgtf.tuning.tables import TrialRow, last_line, trials_table, write_tables
from emgtf.tuning.trials import OBJECTIVE, active_values, run_trial, trial_row  # noqa: F401 (active_values: read here too)

PROJECT = "keras_tuner"  # KerasTuner's project folder inside the run folder
TUNE_KEYS = ("space", "tuner")  # keys of configs/tune.yaml that are not part of a trial's fit config
SEARCH_KEYS = ("resume", "run_dir")  # top-level keys that mean the search, not its trials
ALGORITHMS = ("random", "bayesian", "hyperband", "grid")


@dataclass
class SearchResult:
    """What a search produced. ``trials`` ranked best first (completed ones by val CER)."""

    run_dir: Path
    role: str  # single, chief or worker
    trials: list[TrialRow] = field(default_factory=list)
    best_checkpoint: Path | None = None
    trials_run_here: list[str] = field(default_factory=list)


# --- configuration -----------------------------------------------------------------------------


def merge_overrides(first: Sequence[str], then: Sequence[str]) -> list[str]:
    """``first`` then ``then``, dropping from ``first`` each key that ``then`` sets again."""
    later = {override_key(o) for o in then}
    return [o for o in first if override_key(o) not in later] + list(then)


def _tuner_settings(cfg) -> dict:
    t = cfg.tuner
    algorithm = t.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise EmgtfError(f"tuner.algorithm: unknown algorithm {algorithm!r} (choose {', '.join(ALGORITHMS)})")

    def integer(key, minimum, allow_none=False):
        value = t.get(key)
        if value is None and allow_none:
            return None
        if not is_int(value) or value < minimum:
            raise EmgtfError(f"tuner.{key} must be an integer >= {minimum}, got {value!r}")
        return value

    settings = {
        "algorithm": algorithm,
        "max_trials": integer("max_trials", 1),
        "max_epochs": integer("max_epochs", 1, allow_none=True),
        "factor": integer("factor", 2),
        "hyperband_iterations": integer("hyperband_iterations", 1),
        "num_initial_points": integer("num_initial_points", 1, allow_none=True),
        "max_retries_per_trial": integer("max_retries_per_trial", 0),
        "max_consecutive_failed_trials": integer("max_consecutive_failed_trials", 1),
        "top": integer("top", 1),
        "name": t.get("name"),
        "test": t.get("test", False),
    }
    if not isinstance(settings["test"], bool):
        raise EmgtfError(f"tuner.test must be true or false, got {settings['test']!r}")
    return settings


def _check_algorithm_installed(algorithm: str) -> None:
    # KerasTuner imports scikit-learn only when the Bayesian oracle is built; fail before any
    # file of the search is written, so the same command works once it is installed.
    if algorithm == "bayesian" and importlib.util.find_spec("sklearn") is None:
        raise EmgtfError(
            "tuner.algorithm=bayesian: needs scikit-learn, which is not installed "
            "(pip install 'keras-tuner[bayesian]')"
        )


def _resumable_grid_oracle():
    """KerasTuner's GridSearchOracle, resumable.

    It keeps the grid order of its trials (``_ordered_ids``) and the trials whose next
    combination is still to be found (``_populate_next``) in memory only, so after a reload
    (``resume=true``) its next new trial fails with a KeyError in ``populate_space``
    (KerasTuner 1.4.8). Both are rebuilt here from the reloaded trials.
    """
    import keras_tuner
    from keras_tuner.src.tuners.gridsearch import LinkedList

    class ResumableGridSearchOracle(keras_tuner.oracles.GridSearchOracle):
        def reload(self):
            super().reload()
            values = {i: self.trials[i].hyperparameters.values for i in self.start_order}
            order = sorted(values, key=functools.cmp_to_key(lambda a, b: self._compare(values[a], values[b])))
            self._ordered_ids = LinkedList()
            for trial_id in order:
                self._ordered_ids.insert(trial_id)
            # Trials still running (continued on resume) join when they end, as in a fresh search.
            self._populate_next = [i for i in self.start_order if self.trials[i].status != "RUNNING"]

    return ResumableGridSearchOracle


def _make_oracle(settings: dict, seed: int, epochs: int):
    import keras_tuner

    common = dict(
        objective=keras_tuner.Objective(OBJECTIVE, direction="min"),
        seed=seed,
        max_retries_per_trial=settings["max_retries_per_trial"],
        max_consecutive_failed_trials=settings["max_consecutive_failed_trials"],
    )
    if settings["algorithm"] == "random":
        return keras_tuner.oracles.RandomSearchOracle(max_trials=settings["max_trials"], **common)
    if settings["algorithm"] == "grid":  # every combination once, in order: equal budgets
        return _resumable_grid_oracle()(max_trials=settings["max_trials"], **common)
    if settings["algorithm"] == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(
            max_trials=settings["max_trials"], num_initial_points=settings["num_initial_points"], **common
        )
    return keras_tuner.oracles.HyperbandOracle(
        max_epochs=settings["max_epochs"] or epochs,
        factor=settings["factor"],
        hyperband_iterations=settings["hyperband_iterations"],
        **common,
    )


# --- the search --------------------------------------------------------------------------------


class Search:
    """One search: its config, space, run folder and KerasTuner tuner. See the module docstring."""

    def __init__(self, overrides: Sequence[str], *, callbacks: Sequence = (), log=None):
        from emgtf.training.wandb_logging import WandbSession

        self.log = log if log is not None else (lambda message: None)
        self.callbacks = list(callbacks)
        self.wandb = WandbSession()  # one for all trials: W&B notices are said once per search
        self.role = distributed_role()
        overrides = list(overrides)
        cfg = config_lib.compose("tune", overrides)
        self.resumed = bool(cfg.resume)
        run_dir = cfg.run_dir
        if self.resumed:
            if run_dir is None:
                raise EmgtfError("resume=true needs run_dir=<the folder of the search to continue>")
            saved = read_json(Path(str(run_dir)).expanduser() / "search.json")
            if not saved and self.role != "worker":
                raise EmgtfError(f"resume=true: {run_dir} has no search.json (not an emgtf.tune run folder?)")
            overrides = merge_overrides(saved.get("overrides", []), overrides)
            cfg = config_lib.compose("tune", overrides)
        self.overrides = [o for o in overrides if override_key(o) not in SEARCH_KEYS]
        self.cfg = cfg
        self.settings = _tuner_settings(cfg)

        # Where: a distributed search must name its folder, so that every machine agrees on it.
        if run_dir is None:
            if self.role != "single":
                raise EmgtfError(
                    "a distributed search needs run_dir=<folder> (the same on the chief and every worker)"
                )
            run_dir = _default_run_dir(str(cfg.space))
        self.run_dir = Path(str(run_dir)).expanduser()
        if self.role == "single":
            check_free(self.run_dir)  # "in use by pid ...", not "not empty", for a running search
        saved = read_json(self.run_dir / "search.json")
        if self.role != "worker":
            if self.resumed:
                self._check_same_search(saved)
            elif self.run_dir.exists() and (not self.run_dir.is_dir() or self._used(saved)):
                hint = "resume=true to continue that search, or a new run_dir" if saved else "choose a new run_dir"
                raise EmgtfError(f"run_dir {self.run_dir} is not empty; {hint}")

        # What: the space (a resumed search keeps the copy it started with).
        if self.resumed and (self.run_dir / "space.yaml").is_file():
            self.space = search_space.load(self.run_dir / "space.yaml", name=saved.get("space", {}).get("name"))
        else:
            self.space = search_space.load(str(cfg.space))
        self.name = str(self.settings["name"] or saved.get("name") or self.run_dir.name)
        self._configs: dict = {}
        self._check_configs()

    def _used(self, saved: dict) -> bool:
        """Whether the run folder holds anything but what workers write before the chief starts
        (their KerasTuner state and empty trial folders): a chief may start after its workers."""
        if saved:
            return True
        for entry in self.run_dir.iterdir():
            if entry.name == LOCK_FILE:  # a dead search's lock; a live one was refused before
                continue
            if self.role == "chief" and entry.name == "trials" and entry.is_dir() and not any(entry.iterdir()):
                continue
            if self.role == "chief" and entry.name == PROJECT and entry.is_dir() and all(
                p.suffix == ".json" and p.stem != os.environ.get(ENV_ID) and "chief" not in p.stem
                for p in entry.iterdir()
            ):
                continue
            return True
        return False

    # -- configuration of the trials

    def _check_same_search(self, saved: dict) -> None:
        space = saved.get("space") or {}
        if space and str(self.cfg.space) not in (space.get("name"), space.get("source")):
            raise EmgtfError(
                f"space={self.cfg.space}: the search in {self.run_dir} uses space '{space.get('name')}' "
                "(its space.yaml); a search cannot change its space"
            )
        if saved.get("algorithm") and saved["algorithm"] != self.settings["algorithm"]:
            raise EmgtfError(
                f"tuner.algorithm={self.settings['algorithm']}: the search in {self.run_dir} uses "
                f"{saved['algorithm']} (its search.json); a search cannot change its algorithm"
            )

    def _fit_overrides(self, option: str | None) -> list[str]:
        """The fit overrides of a trial of model config ``option`` (None: the configured one)."""
        overrides = merge_overrides(self.space.overrides, self.overrides)
        if option is not None:
            overrides = merge_overrides(overrides, [f"model={option}"])
        return overrides

    def trial_base_config(self, option: str | None):
        """The fit config a trial starts from, before its hyperparameters (cached per model)."""
        from omegaconf import OmegaConf


        if option not in self._configs:
            cfg = config_lib.compose("tune", self._fit_overrides(option))
            OmegaConf.set_struct(cfg, False)
            for key in (*TUNE_KEYS, *SEARCH_KEYS):
                cfg.pop(key, None)
            cfg.resume = False
            cfg.run_dir = None
            OmegaConf.set_struct(cfg, True)
            self._configs[option] = cfg
        return self._configs[option]

    def _check_configs(self) -> None:
        """Every model the space can choose composes with the command line, every key exists, the
        data split is readable: mistakes surface before the first trial."""
        search_space.check_model_options(self.space)
        chooser = self.space.family_hyperparameter
        user_model = [o for o in self.overrides if override_key(o) == "model"]
        if chooser is not None and user_model:
            raise EmgtfError(
                f"'{user_model[0]}': the search space {self.space.path} chooses the model itself "
                f"(hyperparameters.{chooser.name}); drop model= from the command line"
            )
        options = [None]
        if chooser is not None:
            options = [str(v) for v in (chooser.values if chooser.type == "choice" else (chooser.value,))]
        for option in options:
            try:
                cfg = self.trial_base_config(option)
            except EmgtfError as e:
                where = f"with model={option} (search space {self.space.path}): " if option else ""
                raise EmgtfError(f"{where}{e}") from None
            search_space.check_keys(self.space, cfg)
        cfg = self.trial_base_config(options[0])
        if self.settings["algorithm"] == "hyperband" and any(p.key == "trainer.epochs" for p in self.space.hyperparameters):
            raise EmgtfError(f"{self.space.path}: Hyperband sets trainer.epochs itself; drop it from the space")

        root, split = resolve_data(cfg.data)
        load_split(split, root)

    # -- the files of the search

    def _write_start_files(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        doc = {
            "name": self.name,
            "overrides": self.overrides,
            "algorithm": self.settings["algorithm"],
            "space": {"name": self.space.name, "source": str(self.space.path)},
            "created": datetime.now().isoformat(timespec="seconds"),
        }
        if not (self.run_dir / "search.json").is_file():
            atomic_write_text(self.run_dir / "search.json", json.dumps(doc, indent=2) + "\n")
        if not (self.run_dir / "space.yaml").is_file():
            atomic_write_text(self.run_dir / "space.yaml", self.space.text)
        atomic_write_text(self.run_dir / "tune.yaml", config_lib.to_yaml(self.cfg))

    @property
    def trials_dir(self) -> Path:
        return self.run_dir / "trials"

    def trial_dir(self, trial_id: str) -> Path:
        return self.trials_dir / f"trial_{trial_id}"

    # -- running

    def build_tuner(self):
        epochs = int(self.trial_base_config(None if self.space.family_hyperparameter is None else
                                            self._first_option()).trainer.epochs)
        oracle = _make_oracle(self.settings, int(self.cfg.seed), epochs)
        return _make_tuner_class()(self, oracle)

    def _first_option(self) -> str:
        chooser = self.space.family_hyperparameter
        return str(chooser.values[0] if chooser.type == "choice" else chooser.value)

    def run(self) -> SearchResult:
        """Runs this machine's part of the search; returns the result (tables on single/chief)."""
        _check_algorithm_installed(self.settings["algorithm"])
        if self.role != "worker":
            self._write_start_files()
        else:
            self.trials_dir.mkdir(parents=True, exist_ok=True)
        who = {"single": "", "chief": " (chief: serving the oracle)", "worker": f" ({os.environ.get(ENV_ID)})"}
        self.log(f"emgtf.tune: {self.settings['algorithm']} search '{self.name}' in {self.run_dir}{who[self.role]}")
        self.log(self.space.describe())
        tuner = self.build_tuner()
        self.tuner = tuner
        self.ran_here: list[str] = []
        if self.role == "chief":
            serve(tuner.oracle, log=self.log)
        else:
            try:
                tuner.search()
            except RuntimeError as e:
                if "consecutive failures" not in str(e):
                    raise
                raise EmgtfError(
                    f"{self.settings['max_consecutive_failed_trials']} trials in a row failed "
                    f"(tuner.max_consecutive_failed_trials); the last: {last_line(str(e))} "
                    f"(search space {self.space.path})"
                ) from None
        if self.role == "worker":
            self.log(f"emgtf.tune: {os.environ.get(ENV_ID)} ran {len(self.ran_here)} trials: "
                     f"{', '.join(self.ran_here) or 'none'}")
            return SearchResult(run_dir=self.run_dir, role=self.role, trials_run_here=self.ran_here)
        return self.finish(tuner.oracle)

    def run_trial(self, trial) -> dict:
        """Trains one trial (``emgtf.tuning.trials.run_trial``); returns its metrics."""
        return run_trial(self, trial)

    # -- the end of a search

    def finish(self, oracle) -> SearchResult:
        rows = [trial_row(t, self.trial_dir(t.trial_id)) for t in oracle.trials.values()]
        done = sorted((r for r in rows if r.status == "COMPLETED"), key=lambda r: (r.val_cer, r.trial_id))
        rest = sorted((r for r in rows if r.status != "COMPLETED"), key=lambda r: r.trial_id)
        ranked = done + rest
        result = SearchResult(run_dir=self.run_dir, role=self.role, trials=ranked,
                              trials_run_here=getattr(self, "ran_here", []))
        write_tables(self.run_dir, [p.name for p in self.space.hyperparameters], ranked)
        self.log(trials_table(ranked, top=self.settings["top"]))
        if not done:
            if not rows:
                raise EmgtfError(f"the search in {self.run_dir} ran no trial (tuner.max_trials reached?)")
            first = rest[0]
            raise EmgtfError(
                f"every trial of the search failed ({len(rows)} trials, search space {self.space.path}); "
                f"trial {first.trial_id}: {first.message}"
            )
        best = done[0]
        trial, search = RunFolder(best.run_dir), RunFolder(self.run_dir)
        checkpoint = trial.best
        if checkpoint.is_file():
            atomic_copy(checkpoint, search.best)
            atomic_copy(trial.config, search.config)
            summary = {"trial": best.trial_id, "val_CER": best.val_cer, "best_epoch": best.best_epoch,
                       "hyperparameters": best.hyperparameters, "source": str(checkpoint)}
            atomic_write_text(self.run_dir / "best.json", json.dumps(summary, indent=2) + "\n")
            result.best_checkpoint = search.best
            self.log(f"best: trial {best.trial_id}, val CER {best.val_cer:.2f} % -> {result.best_checkpoint}")
            self.log(f"  python -m emgtf.evaluate checkpoint={result.best_checkpoint}")
        else:
            self.log(f"best: trial {best.trial_id}, val CER {best.val_cer:.2f} %; its checkpoint {checkpoint} "
                     "is on the worker that ran it (no shared run folder)")
        return result

def _default_run_dir(space: str) -> Path:
    label = Path(space).stem if ("/" in space or space.endswith((".yaml", ".yml"))) else space
    return default_run_dir(f"tune-{label}")


# --- KerasTuner glue ---------------------------------------------------------------------------


@functools.cache
def _make_tuner_class():
    """The KerasTuner classes, defined on first use (importing keras_tuner imports TensorFlow)."""
    import keras_tuner

    class SpaceHyperModel(keras_tuner.HyperModel):
        """Declares a search space; trials train through emgtf.training, not through a model
        this hypermodel builds, so ``build`` returns nothing."""

        def __init__(self, space):
            super().__init__(name=f"space_{space.name}")
            self.space = space

        def build(self, hp):
            self.space.declare(hp)

    class EmgtfTuner(keras_tuner.engine.base_tuner.BaseTuner):
        """KerasTuner's BaseTuner whose trials are ``emgtf.training.train`` runs."""

        def __init__(self, search: Search, oracle):
            self.search_ = search
            super().__init__(
                oracle,
                hypermodel=SpaceHyperModel(search.space),
                directory=str(search.run_dir),
                project_name=PROJECT,
                overwrite=False,
            )

        def run_trial(self, trial, *args, **kwargs):
            interrupts.check()  # Ctrl-C at the end of the last trial: no new one
            return self.search_.run_trial(trial)

        def save_model(self, trial_id, model, step=0):
            pass  # train() keeps each trial's best.keras and last.keras itself

        def load_model(self, trial):
            return load_checkpoint(RunFolder(self.search_.trial_dir(trial.trial_id)).best)

    return EmgtfTuner




def check_folder_free(overrides: Sequence[str]) -> None:
    """Raises ``RunLocked`` naming the holder if the ``run_dir=`` of
    ``overrides`` is held by a live single-machine search or fit; needs no TensorFlow, so the
    command makes it before loading it. (A distributed search shares its folder by design.)"""

    run_dir = parse_value(overrides, "run_dir")
    if run_dir is not None and distributed_role() == "single":
        check_free(Path(str(run_dir)).expanduser())


def run_search(overrides: Sequence[str] = (), *, callbacks: Sequence = (), log=None) -> SearchResult:
    """Python entry point: the search ``python -m emgtf.tune *overrides`` would run.

    ``callbacks``: extra Keras callbacks for every trial (after emgtf's own). ``log`` (one
    argument) hears the search's progress, its trials' training and the tables (None: nothing is
    said; the tune command passes ``print``).
    """
    search = Search(overrides, callbacks=callbacks, log=log)
    # One process per search folder; a distributed search shares its folder between the chief and
    # its workers (perhaps on other hosts), which KerasTuner's oracle coordinates instead.
    lock = RunLock.acquire(search.run_dir) if search.role == "single" else None
    try:
        with interrupts.deferred():
            return search.run()
    except KeyboardInterrupt:
        if search.role != "worker":
            search.log(f"\nemgtf.tune: interrupted; continue with: python -m emgtf.tune resume=true "
                       f"run_dir={search.run_dir}")
        raise
    finally:
        if lock is not None:
            lock.release()
