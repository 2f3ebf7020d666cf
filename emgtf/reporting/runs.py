"""Run folders as a report sees them: config, per-epoch history, best epoch, test CER, a label.

A run folder is what ``python -m emgtf.fit`` (or one trial of ``python -m emgtf.tune``) leaves:
``config.yaml`` (the resolved config), ``history.csv`` (one row per epoch: ``epoch``,
``train/loss``, ``val/loss``, ``val/CER``, ``val/IER``, ``val/DER``, ``val/SER``, ``lr``,
``seconds``, and whatever else a callback logged) and, after fit's test evaluation,
``best.test.<decoder>.eval.json``. A tune folder holds one run folder per trial under
``trials/trial_<id>/``.

The history is read by ``emgtf.run_folder.read_history``, configs with PyYAML rather
than Hydra: a report must not wait for TensorFlow or Hydra to load.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from emgtf.checks import is_number
from emgtf.errors import EmgtfError
from emgtf.files import read_json as _read_json
from emgtf.run_folder import COLUMNS, RATES, RunFolder  # noqa: F401  (RATES: for reporting.build)

# history.csv columns a report draws.
LOSS_COLUMNS = (COLUMNS["loss"], COLUMNS["val_loss"])
LR_COLUMN = "lr"
# Config keys that differ between any two runs without making them different experiments.
IGNORED_KEYS = ("run_dir", "resume", "trial")


@dataclass
class Run:
    """One run folder. ``history``: rows of history.csv (``epoch`` int, the rest float, empty
    cells left out); ``config``: config.yaml as a dict ({} when the folder has none);
    ``test_report``: the parsed test evaluation JSON or None; ``label``: set by
    ``label_runs``."""

    path: Path
    config: dict
    history: list[dict]
    test_report: dict | None = None
    test_report_path: Path | None = None
    label: str = ""
    differences: dict = field(default_factory=dict)  # the config keys that set this run apart

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def family(self) -> str | None:
        model = self.config.get("model")
        return str(model["family"]) if isinstance(model, Mapping) and model.get("family") else None

    @property
    def best(self) -> dict | None:
        """The history row of the best epoch: lowest val CER, ties to the lower val loss (the
        rule that picks ``best.keras``); None if no epoch was validated."""
        rows = [r for r in self.history if _finite(r.get("val/CER"))]
        if not rows:
            return None
        return min(rows, key=lambda r: (r["val/CER"], r.get("val/loss", math.inf)))

    @property
    def best_val_cer(self) -> float | None:
        best = self.best
        return None if best is None else best["val/CER"]

    @property
    def best_epoch(self) -> int | None:
        best = self.best
        return None if best is None else int(best["epoch"])

    @property
    def test_cer(self) -> float | None:
        """Overall test CER (%) of the run's test report, None without one."""
        if self.test_report is None:
            return None
        value = (self.test_report.get("overall") or {}).get("CER")
        return float(value) if _finite(value) else None

    @property
    def test_decoder(self) -> str | None:
        if self.test_report is None:
            return None
        decoder = self.test_report.get("decoder") or {}
        return str(decoder.get("kind", "greedy")) if isinstance(decoder, Mapping) else str(decoder)


def _finite(value) -> bool:
    return is_number(value)


# --- reading -----------------------------------------------------------------------------------


def read_config(path: Path) -> dict:
    """A run's ``config.yaml`` as a dict; {} if the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EmgtfError(f"{path}: not a readable config ({first})") from None
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise EmgtfError(f"{path}: a config must be a YAML mapping")
    return cfg


def find_test_report(run_dir: Path) -> Path | None:
    """The run's test evaluation report: ``best.test.greedy.eval.json`` (what fit writes), else
    the first other ``*.test.*.eval.json`` by name; None if there is none."""
    preferred = run_dir / "best.test.greedy.eval.json"
    if preferred.is_file():
        return preferred
    others = sorted(run_dir.glob("*.test.*.eval.json"))
    return others[0] if others else None


def load_run(path) -> Run:
    """The ``Run`` of one run folder; EmgtfError if it is missing or has no history.csv."""
    folder = RunFolder(path)
    path = folder.path
    if not path.is_dir():
        raise EmgtfError(f"{path}: no such run folder")
    if not folder.history.is_file():
        raise EmgtfError(f"{path}: no {folder.history.name} (not an emgtf run folder, or no epoch finished)")
    history = folder.read_history()
    report_path = find_test_report(path)
    report = read_json(report_path) if report_path is not None else None
    return Run(path=path, config=read_config(folder.config), history=history,
               test_report=report, test_report_path=report_path)


def is_tune_folder(path: Path) -> bool:
    return path.is_dir() and not RunFolder(path).history.exists() and (path / "trials").is_dir()


def trial_folders(path: Path) -> list[Path]:
    """The trial run folders of a tune folder, in trial-id order."""
    return sorted(p for p in (path / "trials").glob("trial_*") if p.is_dir())


def load_runs(paths: Iterable, *, warn=None) -> list[Run]:
    """Runs of run folders and tune folders (a tune folder stands for its trials).

    A trial without history.csv (failed before its first epoch) is skipped with a note through
    ``warn`` (one argument; None: nothing is said, the report command passes its stderr); a run
    folder named explicitly must have one.
    """
    warn = warn or (lambda message: None)
    runs = []
    for raw in paths:
        path = Path(raw)
        if not is_tune_folder(path):
            runs.append(load_run(path))
            continue
        trials = trial_folders(path)
        kept = [t for t in trials if RunFolder(t).history.is_file()]
        for t in trials:
            if t not in kept:
                warn(f"emgtf.report: {t}: no history.csv (trial failed before its first epoch); skipped")
        if not kept:
            raise EmgtfError(f"{path}: a tune folder with no trial that finished an epoch")
        runs.extend(load_run(t) for t in kept)
    return runs


# --- labels ------------------------------------------------------------------------------------


def flatten(cfg: Mapping, prefix: str = "") -> dict:
    """``{"model": {"dropout": 0.2}}`` -> ``{"model.dropout": 0.2}`` (lists stay values)."""
    out = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _ignored(key: str) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in IGNORED_KEYS)


_MISSING = object()


def config_differences(configs: Sequence[Mapping]) -> list[dict]:
    """Per config, the flattened keys whose values are not the same in all of them.

    ``model.*`` keys are compared only between runs of the same model family: families have
    different hyperparameters, and "tcn has no hidden_size" is not a difference worth a label.
    ``run_dir``, ``resume`` and ``trial.*`` are ignored.
    """
    flat = [{k: v for k, v in flatten(c).items() if not _ignored(k)} for c in configs]
    families = [f.get("model.family") for f in flat]
    keys = sorted({k for f in flat for k in f})
    out = [{} for _ in flat]
    for key in keys:
        if key.startswith("model.") and key != "model.family":
            groups = {}
            for i, fam in enumerate(families):
                groups.setdefault(fam, []).append(i)
        else:
            groups = {None: list(range(len(flat)))}
        for members in groups.values():
            values = [flat[i].get(key, _MISSING) for i in members]
            if any(v != values[0] for v in values[1:]):
                for i, v in zip(members, values):
                    if v is not _MISSING:
                        out[i][key] = v
    return out


def format_value(value) -> str:
    """A config value the way an override writes it: ``true``, ``null``, ``[16, 16]``, ``1e-05``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


def label_runs(runs: Sequence[Run]) -> None:
    """Sets each run's ``label`` and ``differences``: its model family, then the config keys
    that differ between the runs (``rnn model.dropout=0.2``); the folder name where configs do
    not tell the runs apart."""
    differences = config_differences([r.config for r in runs])
    labels = []
    for run, diff in zip(runs, differences):
        run.differences = diff
        parts = [f"{k}={format_value(v)}" for k, v in diff.items() if k != "model.family"]
        head = run.family or run.name
        labels.append(f"{head} {', '.join(parts)}" if parts else head)
    for i, run in enumerate(runs):
        clash = labels.count(labels[i]) > 1
        run.label = f"{labels[i]} [{run.name}]" if clash else labels[i]


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; EmgtfError naming the file if it is missing or malformed."""
    return _read_json(path, missing_ok=False, strict=True)
