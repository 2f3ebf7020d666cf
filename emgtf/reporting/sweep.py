"""A finished sweep of one hyperparameter (``python -m emgtf.tune`` of a one-variable space such
as ``channels``, ``fraction``, ``sample_rate`` or ``preprocessing``): the CER of each trial
against the swept value, val and test, as the course reports draw their studies (Hou, Li, Hu's
Figure 7: CER against the number of channels).

Read from the tune folder: ``space.yaml`` (the order of the space's hyperparameters) and
``best_trials.json`` (each trial's values, best val CER and, with ``tuner.test=true``, test CER).
The swept hyperparameter is the first of the space whose value differs between the completed
trials; the others that differ with it (a choice's conditional settings) ride along.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from emgtf.errors import EmgtfError

SWEEP_FILES = ("space.yaml", "best_trials.json")


@dataclass(frozen=True)
class SweepPoint:
    value: object
    trial: str
    val_cer: float | None
    test_cer: float | None


@dataclass
class Sweep:
    """``name``: the swept hyperparameter; ``points`` in the order of its values (numbers
    ascending, choices as the space lists them)."""

    path: Path
    name: str
    points: list[SweepPoint]
    numeric: bool

    def values(self) -> list:
        """The distinct swept values, in order."""
        seen = []
        for p in self.points:
            if p.value not in seen:
                seen.append(p.value)
        return seen

    def mean(self, value, column: str) -> float | None:
        """Mean ``val_cer`` or ``test_cer`` of the trials at ``value`` (None without any)."""
        numbers = [getattr(p, column) for p in self.points if p.value == value]
        numbers = [n for n in numbers if n is not None]
        return sum(numbers) / len(numbers) if numbers else None


def _number(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def is_sweep_folder(path: Path) -> bool:
    return all((Path(path) / name).is_file() for name in SWEEP_FILES)


def load_sweep(path) -> Sweep | None:
    """The sweep of the tune folder ``path``; None when no hyperparameter differs between its
    completed trials (a single trial, or none completed)."""
    path = Path(path)
    try:
        space = yaml.safe_load((path / "space.yaml").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise EmgtfError(f"{path / 'space.yaml'}: not a readable search space ({type(e).__name__})") from None
    entries = space.get("hyperparameters") if isinstance(space, dict) else None
    if not isinstance(entries, dict):
        raise EmgtfError(f"{path / 'space.yaml'}: no 'hyperparameters' mapping")
    try:
        records = json.loads((path / "best_trials.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EmgtfError(f"{path / 'best_trials.json'}: not readable JSON ({type(e).__name__})") from None
    if not isinstance(records, list):
        raise EmgtfError(f"{path / 'best_trials.json'}: expected a list of trials")
    done = [r for r in records if isinstance(r, dict) and r.get("status") == "COMPLETED"
            and isinstance(r.get("hyperparameters"), dict)]
    name = next((n for n in entries
                 if len({repr(r["hyperparameters"].get(n)) for r in done}) > 1), None)
    if name is None:
        return None
    points = [SweepPoint(r["hyperparameters"].get(name), str(r.get("trial")), _number(r.get("val_CER")),
                         _number(r.get("test_CER"))) for r in done]
    numeric = all(_number(p.value) is not None for p in points)
    spec = entries[name] if isinstance(entries[name], dict) else {}
    if numeric:
        points.sort(key=lambda p: float(p.value))
    elif isinstance(spec.get("values"), list):
        order = {repr(v): i for i, v in enumerate(spec["values"])}
        points.sort(key=lambda p: order.get(repr(p.value), len(order)))
    return Sweep(path, name, points, numeric)


def sweep_figure(sweep: Sweep):
    """CER (%) against the swept value: the mean val CER and test CER at each value (lines), each
    trial's (points)."""
    from emgtf.reporting.figures import new_figure, plain

    fig = new_figure(6.4, 4.0, layout="constrained")
    ax = fig.add_subplot()
    values = sweep.values()
    xs = [float(v) for v in values] if sweep.numeric else list(range(len(values)))
    where = dict(zip(map(repr, values), xs))
    for column, label, marker in (("val_cer", "val CER (best epoch)", "o"), ("test_cer", "test CER", "s")):
        means = [sweep.mean(v, column) for v in values]
        line = [(x, m) for x, m in zip(xs, means) if m is not None]
        if not line:
            continue
        drawn = ax.plot([x for x, _ in line], [m for _, m in line], marker=marker, label=label)
        trials = [(where[repr(p.value)], getattr(p, column)) for p in sweep.points
                  if getattr(p, column) is not None]
        ax.scatter([x for x, _ in trials], [y for _, y in trials], s=12, alpha=0.5,
                   color=drawn[0].get_color())
    if not sweep.numeric:
        ax.set_xticks(xs, [plain(str(v)) for v in values], rotation=15)
    else:
        ax.set_xticks(xs, [plain(f"{v:g}") for v in xs])
    ax.set_xlabel(plain(sweep.name))
    ax.set_ylabel("CER (%)")
    ax.set_title(plain(f"CER against {sweep.name} ({sweep.path.name})"))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def sweep_rows(sweep: Sweep) -> tuple[list[str], list[list]]:
    """The sweep as table columns and rows: value, trial, val CER, test CER."""
    from emgtf.reporting import html

    columns = [sweep.name, "trial", "val CER", "test CER"]
    rows = [[str(p.value), p.trial, html.number(p.val_cer), html.number(p.test_cer)]
            for p in sweep.points]
    return columns, rows


def load_sweeps(paths: Sequence[Path]) -> list[Sweep]:
    """The sweeps of those ``paths`` that are finished tune folders with a swept value."""
    sweeps = []
    for path in paths:
        if Path(path).is_dir() and is_sweep_folder(path):
            sweep = load_sweep(path)
            if sweep is not None:
                sweeps.append(sweep)
    return sweeps
