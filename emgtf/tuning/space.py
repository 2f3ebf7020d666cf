"""Search spaces for ``python -m emgtf.tune``: which hyperparameters a search varies, over which
ranges, under which conditions. One YAML file per space in ``tuner/`` (or any path).

A space file::

    # Regularisation as the emg2qwerty course projects tried it, for any model family.      <- first comment: description
    overrides: [model=tds_conv_ctc]      # optional: fit overrides every trial starts from
    hyperparameters:                     # in order; a condition's parent comes first
      dropout:    {type: float, min: 0.0, max: 0.5, step: 0.05}
      l2:         {type: float, min: 1.0e-6, max: 1.0e-3, sampling: log}
      batch_norm: {type: boolean}
      model:      {type: choice, values: [small_rnn, tcn]}        # the model family (config group)
      tcn_width:  {type: int, min: 32, max: 256, step: 32, key: hidden_size, when: {model: [tcn]}}
      tds_blocks: {type: int, min: 2, max: 4, key: block_channels, repeat: 24}   # [24] * n

Each entry is a KerasTuner hyperparameter (``type``: int, float, choice, boolean or fixed; ``min``,
``max``, ``step``, ``sampling`` linear/log/reverse_log, ``values``, ``default``). Where its value goes
is ``key`` (default: the entry's name), in the convention of ``emgtf.training.train``'s
``hp_overrides``: a plain name is a model hyperparameter (``model.<name>``), a dotted name any
config key (``optimizer.learning_rate``), and ``model`` chooses the model config
(``configs/model/<option>.yaml``), so its sub-spaces are the entries with ``when: {model: [...]}``.
``repeat: X`` turns a count n into the list ``[X] * n`` (TDS blocks), ``as_list: true`` a value v
into ``[v]`` (``mlp_features``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from emgtf import config as config_lib
from emgtf import paths
from emgtf.errors import EmgtfError
from emgtf.files import first_comment

TYPES = ("int", "float", "choice", "boolean", "fixed")
SAMPLINGS = ("linear", "log", "reverse_log")
FIELDS = {
    "int": {"min", "max", "step", "sampling", "default"},
    "float": {"min", "max", "step", "sampling", "default"},
    "choice": {"values", "ordered", "default"},
    "boolean": {"default"},
    "fixed": {"value"},
}
COMMON_FIELDS = {"type", "key", "when", "repeat", "as_list", "help"}
FAMILY_KEY = "model"  # the hyperparameter key that picks the model config
RESERVED_PREFIX = "tuner/"  # KerasTuner's Hyperband adds tuner/epochs, tuner/trial_id, ...


@dataclass(frozen=True)
class Hyperparameter:
    """One entry of a space file."""

    name: str
    type: str
    key: str
    min: float | int | None = None
    max: float | int | None = None
    step: float | int | None = None
    sampling: str = "linear"
    values: tuple = ()
    ordered: bool | None = None
    default: object = None
    value: object = None  # type fixed
    when: tuple[tuple[str, tuple], ...] = ()  # (parent name, allowed values), all must hold
    repeat: object = None
    as_list: bool = False

    def config_value(self, value):
        """The value as it goes into the config (``repeat``, ``as_list`` applied)."""
        if self.repeat is not None:
            return [self.repeat] * int(value)
        if self.as_list:
            return [value]
        return value


@dataclass
class SearchSpace:
    """A loaded, checked space file."""

    name: str
    path: Path
    description: str
    hyperparameters: list[Hyperparameter]
    overrides: list[str] = field(default_factory=list)
    text: str = ""  # the file as read, saved into the search folder

    def __getitem__(self, name: str) -> Hyperparameter:
        for hp in self.hyperparameters:
            if hp.name == name:
                return hp
        raise KeyError(name)

    @property
    def family_hyperparameter(self) -> Hyperparameter | None:
        """The entry that chooses the model config, if the space has one."""
        return next((hp for hp in self.hyperparameters if hp.key == FAMILY_KEY), None)

    def declare(self, hp) -> None:
        """Registers the space in a ``keras_tuner.HyperParameters`` (conditions as scopes)."""
        for p in self.hyperparameters:
            _declare_one(hp, p, list(p.when))

    def to_overrides(self, values: Mapping) -> tuple[str | None, dict]:
        """(model config option or None, ``hp_overrides`` for ``train``) of a trial's values.

        ``values`` are the trial's active values; names outside the space (Hyperband's
        ``tuner/...``) are ignored here.
        """
        option, overrides = None, {}
        for p in self.hyperparameters:
            if p.name not in values:
                continue
            if p.key is None:
                continue  # a switch: it only conditions other entries
            if p.key == FAMILY_KEY:
                option = str(values[p.name])
            else:
                overrides[p.key] = p.config_value(values[p.name])
        return option, overrides

    def describe(self) -> str:
        lines = [f"search space '{self.name}' ({self.path}): {self.description}"]
        for p in self.hyperparameters:
            if p.type in ("int", "float"):
                what = f"{p.type} {p.min}..{p.max}" + (f" step {p.step}" if p.step else "") + (
                    f" ({p.sampling})" if p.sampling != "linear" else ""
                )
            elif p.type == "choice":
                what = "one of " + ", ".join(str(v) for v in p.values)
            elif p.type == "boolean":
                what = "true / false"
            else:
                what = f"fixed {p.value!r}"
            target = "" if p.key == p.name else (" (switch)" if p.key is None else f" -> {p.key}")
            cond = "".join(f" if {n} in [{', '.join(str(v) for v in vs)}]" for n, vs in p.when)
            lines.append(f"  {p.name}: {what}{target}{cond}")
        return "\n".join(lines)


def _declare_one(hp, p: Hyperparameter, conditions: list):
    if conditions:
        parent, parent_values = conditions[0]
        with hp.conditional_scope(parent, list(parent_values)):
            return _declare_one(hp, p, conditions[1:])
    if p.type == "int":
        kwargs = {"step": p.step} if p.step is not None else {}
        return hp.Int(p.name, int(p.min), int(p.max), sampling=p.sampling, default=p.default, **kwargs)
    if p.type == "float":
        return hp.Float(p.name, float(p.min), float(p.max), step=p.step, sampling=p.sampling, default=p.default)
    if p.type == "choice":
        return hp.Choice(p.name, list(p.values), ordered=p.ordered, default=p.default)
    if p.type == "boolean":
        return hp.Boolean(p.name, default=bool(p.default) if p.default is not None else False)
    return hp.Fixed(p.name, p.value)


# --- loading -----------------------------------------------------------------------------------


def available() -> list[str]:
    """Names of the shipped spaces (``tuner/<name>.yaml``), sorted."""
    return sorted(p.stem for p in paths.tuner_dir().glob("*.yaml"))


def space_path(spec: str | os.PathLike) -> Path:
    """The file of a space: a name in ``tuner/`` or a path to a YAML file."""
    text = str(spec)
    if os.sep in text or "/" in text or text.endswith((".yaml", ".yml")):
        path = Path(text).expanduser()
        if not path.is_file():
            raise EmgtfError(f"space={text}: search space file {path} does not exist")
        return path
    path = paths.tuner_dir() / f"{text}.yaml"
    if not path.is_file():
        names = available()
        raise EmgtfError(
            f"space={text}: unknown search space '{text}' (choose one of {', '.join(names) or 'none'} "
            f"in {paths.tuner_dir()}, or give a path to a YAML file)"
        )
    return path


def load(spec: str | os.PathLike, *, name: str | None = None) -> SearchSpace:
    """Reads and checks a space file (structure, types, ranges, conditions).

    Whether each key exists in the configs is checked against a composed config by
    ``check_keys``. Every mistake is an ``EmgtfError`` naming the file and the key.
    """
    path = space_path(spec)
    text = path.read_text()
    try:
        doc = OmegaConf.create(text)  # rejects duplicate keys, unlike a plain YAML load
    except (OmegaConfBaseException, ValueError, yaml.YAMLError) as e:
        raise EmgtfError(f"{path}: not a readable YAML space file ({_yaml_problem(e)})") from None
    if not isinstance(doc, DictConfig):
        raise EmgtfError(f"{path}: a search space must be a YAML mapping with 'hyperparameters'")
    unknown = [k for k in doc if k not in ("hyperparameters", "overrides", "description")]
    if unknown:
        raise EmgtfError(f"{path}: unknown top-level key '{unknown[0]}' (expected hyperparameters, overrides, description)")
    entries = doc.get("hyperparameters")
    if not isinstance(entries, DictConfig) or not len(entries):
        raise EmgtfError(f"{path}: 'hyperparameters' must be a non-empty mapping of name -> definition")
    overrides = doc.get("overrides")
    overrides = [] if overrides is None else overrides
    if not isinstance(overrides, (list, ListConfig)) or not all(isinstance(o, str) and "=" in o for o in overrides):
        raise EmgtfError(f"{path}: 'overrides' must be a list of key=value strings (fit overrides)")

    hyperparameters: list[Hyperparameter] = []
    for raw_name in entries:
        hyperparameters.append(_parse_entry(path, str(raw_name), entries[raw_name], hyperparameters))
    keys = [hp.key for hp in hyperparameters]
    for hp in hyperparameters:
        if hp.key is None:
            continue
        same = [other for other in hyperparameters if other.key == hp.key and other is not hp]
        for other in same:
            if not _exclusive(hp, other):
                raise EmgtfError(
                    f"{path}: hyperparameters.{other.name}: sets '{hp.key}' like hyperparameters.{hp.name}; "
                    "two entries may share a key only under exclusive 'when' conditions"
                )
    if keys.count(FAMILY_KEY) > 1:
        raise EmgtfError(f"{path}: more than one hyperparameter chooses the model")
    description = str(doc.get("description") or first_comment(text))
    return SearchSpace(
        name=name or path.stem,
        path=path,
        description=description,
        hyperparameters=hyperparameters,
        overrides=[str(o) for o in overrides],
        text=text,
    )


def _yaml_problem(e: Exception) -> str:
    problem, mark = getattr(e, "problem", None), getattr(e, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}"
    return "; ".join(ln.strip() for ln in str(e).splitlines() if ln.strip()) or type(e).__name__


def _exclusive(a: Hyperparameter, b: Hyperparameter) -> bool:
    """Whether two entries can never be active together (the same parent, disjoint values)."""
    for name, values in a.when:
        for other_name, other_values in b.when:
            if name == other_name and not set(values) & set(other_values):
                return True
    return False


def _number(path, where: str, value, *, integer: bool):
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or isinstance(value, bool) or (not integer and not math.isfinite(value)):
        kind = "an integer" if integer else "a number"
        raise EmgtfError(f"{path}: {where}: expected {kind}, got {value!r}")
    return value


def _parse_entry(path: Path, name: str, raw, earlier: list[Hyperparameter]) -> Hyperparameter:
    where = f"hyperparameters.{name}"
    if name.startswith(RESERVED_PREFIX):
        raise EmgtfError(f"{path}: {where}: names starting with '{RESERVED_PREFIX}' are KerasTuner's own")
    if not isinstance(raw, DictConfig):
        raise EmgtfError(f"{path}: {where}: expected a mapping such as {{type: float, min: 0.0, max: 0.5}}")
    spec = OmegaConf.to_container(raw, resolve=True)
    kind = spec.get("type")
    if kind not in TYPES:
        raise EmgtfError(f"{path}: {where}.type: expected one of {', '.join(TYPES)}, got {kind!r}")
    allowed = FIELDS[kind] | COMMON_FIELDS
    for key in spec:
        if key not in allowed:
            raise EmgtfError(
                f"{path}: {where}.{key}: unknown field for type {kind} (allowed: {', '.join(sorted(allowed))})"
            )
    key = spec.get("key", name)
    if key is not None and (not isinstance(key, str) or not key or key.startswith(".") or key.endswith(".")):
        raise EmgtfError(
            f"{path}: {where}.key: expected a config key such as hidden_size or optimizer.learning_rate, "
            "or null for a switch that only conditions other entries"
        )
    if key is not None and key.startswith("model.") and key.count(".") == 1:
        key = key.split(".", 1)[1]  # model.dropout is the model hyperparameter dropout
    fields: dict = {"name": name, "type": kind, "key": key}

    if kind in ("int", "float"):
        integer = kind == "int"
        for bound in ("min", "max"):
            if bound not in spec:
                raise EmgtfError(f"{path}: {where}.{bound}: missing (type {kind} needs min and max)")
            fields[bound] = _number(path, f"{where}.{bound}", spec[bound], integer=integer)
        if fields["min"] > fields["max"]:
            raise EmgtfError(f"{path}: {where}: min {fields['min']} > max {fields['max']}")
        sampling = spec.get("sampling", "linear")
        if sampling not in SAMPLINGS:
            raise EmgtfError(f"{path}: {where}.sampling: expected one of {', '.join(SAMPLINGS)}, got {sampling!r}")
        if sampling != "linear" and fields["min"] <= 0:
            raise EmgtfError(f"{path}: {where}.min: {sampling} sampling needs min > 0, got {fields['min']}")
        fields["sampling"] = sampling
        if spec.get("step") is not None:
            step = _number(path, f"{where}.step", spec["step"], integer=integer)
            if step <= 0 or (sampling != "linear" and step <= 1):
                need = "> 1 (a factor)" if sampling != "linear" else "> 0"
                raise EmgtfError(f"{path}: {where}.step: must be {need}, got {step}")
            fields["step"] = step
        if spec.get("default") is not None:
            default = _number(path, f"{where}.default", spec["default"], integer=integer)
            if not fields["min"] <= default <= fields["max"]:
                raise EmgtfError(f"{path}: {where}.default: {default} is outside min..max")
            fields["default"] = default
    elif kind == "choice":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise EmgtfError(f"{path}: {where}.values: expected a non-empty list")
        if any(isinstance(v, (list, dict)) or v is None for v in values):
            raise EmgtfError(
                f"{path}: {where}.values: choices must be numbers, strings or booleans "
                "(for a list-valued key use repeat or as_list)"
            )
        if len({type(v) for v in values}) > 1:  # KerasTuner's Choice holds one type
            raise EmgtfError(f"{path}: {where}.values: all choices must be of one type (write 1.0, not 1, among floats), got {values}")
        if len(set(values)) != len(values):
            raise EmgtfError(f"{path}: {where}.values: a choice is listed twice in {values}")
        fields["values"] = tuple(values)
        if spec.get("ordered") is not None:
            fields["ordered"] = bool(spec["ordered"])
        if spec.get("default") is not None:
            if spec["default"] not in values:
                raise EmgtfError(f"{path}: {where}.default: {spec['default']!r} is not one of the values")
            fields["default"] = spec["default"]
    elif kind == "boolean":
        if spec.get("default") is not None and not isinstance(spec["default"], bool):
            raise EmgtfError(f"{path}: {where}.default: expected true or false")
        fields["default"] = spec.get("default")
    else:
        if "value" not in spec or isinstance(spec["value"], (list, dict)):
            raise EmgtfError(f"{path}: {where}.value: a fixed hyperparameter needs one number, string or boolean")
        fields["value"] = spec["value"]

    if key == FAMILY_KEY and kind not in ("choice", "fixed"):
        raise EmgtfError(f"{path}: {where}: the model is chosen with type choice (or fixed), not {kind}")
    if "repeat" in spec:
        if kind != "int" or isinstance(spec["repeat"], (list, dict)) or spec["repeat"] is None:
            raise EmgtfError(f"{path}: {where}.repeat: needs type int (a count) and one list element")
        if fields["min"] < 1:
            raise EmgtfError(f"{path}: {where}.min: a repeat count must be >= 1, got {fields['min']}")
        fields["repeat"] = spec["repeat"]
    if spec.get("as_list"):
        if "repeat" in spec:
            raise EmgtfError(f"{path}: {where}: repeat and as_list exclude each other")
        fields["as_list"] = True

    when = spec.get("when") or {}
    if not isinstance(when, dict):
        raise EmgtfError(f"{path}: {where}.when: expected a mapping parent -> [values]")
    conditions = []
    for parent, allowed_values in when.items():
        parent_hp = next((p for p in earlier if p.name == parent), None)
        if parent_hp is None:
            raise EmgtfError(
                f"{path}: {where}.when.{parent}: no hyperparameter '{parent}' defined before this one"
            )
        if parent_hp.type not in ("choice", "boolean"):
            raise EmgtfError(f"{path}: {where}.when.{parent}: conditions need a choice or boolean parent")
        if not isinstance(allowed_values, list):
            allowed_values = [allowed_values]
        options = list(parent_hp.values) if parent_hp.type == "choice" else [True, False]
        for v in allowed_values:
            if v not in options or (isinstance(v, bool) != isinstance(options[0], bool)):
                raise EmgtfError(
                    f"{path}: {where}.when.{parent}: {v!r} is not a value of {parent} "
                    f"({', '.join(str(o) for o in options)})"
                )
        conditions.append((parent, tuple(allowed_values)))
    fields["when"] = tuple(conditions)
    return Hyperparameter(**fields)


# --- checking against the configs --------------------------------------------------------------


def model_option_family(option: str) -> str:
    """The model family of ``configs/model/<option>.yaml``."""
    path = paths.config_dir() / "model" / f"{option}.yaml"
    if not path.is_file():
        raise KeyError(option)
    preset = OmegaConf.load(path)
    if preset.get("family"):
        return str(preset.family)
    # A preset of another option (small_tds: tds_conv_ctc at CPU size) has that option's family.
    for entry in preset.get("defaults", []):
        if isinstance(entry, str) and entry not in ("_self_", option) and not entry.startswith("_"):
            return model_option_family(entry)
    return option


def families_of(space: SearchSpace, hp: Hyperparameter, base_family: str) -> dict[str, str]:
    """{model option: family} the entry ``hp`` can be active with."""
    chooser = space.family_hyperparameter
    if chooser is None:
        return {"(configured model)": base_family}
    options = list(chooser.values) if chooser.type == "choice" else [chooser.value]
    for parent, allowed in hp.when:
        if parent == chooser.name:
            options = [o for o in options if o in allowed]
    return {str(o): model_option_family(str(o)) for o in options}


def check_model_options(space: SearchSpace) -> None:
    """The model options a space chooses from exist in configs/model."""
    chooser = space.family_hyperparameter
    if chooser is None:
        return
    options = config_lib.group_options("model")
    for value in chooser.values if chooser.type == "choice" else (chooser.value,):
        if str(value) not in options:
            raise EmgtfError(
                f"{space.path}: hyperparameters.{chooser.name}: unknown model '{value}' "
                f"(choose from {', '.join(options)}: configs/model/*.yaml)"
            )


def check_keys(space: SearchSpace, base_cfg: DictConfig) -> None:
    """Every entry's key exists: model options in configs/model, model hyperparameters in the
    families they can be active with, dotted keys in ``base_cfg`` (the composed fit config)."""
    from emgtf import models

    base_family = str(base_cfg.model.get("family"))
    for hp in space.hyperparameters:
        where = f"{space.path}: hyperparameters.{hp.name}"
        if hp.key is None:
            continue
        if hp.key == FAMILY_KEY:
            check_model_options(space)
            continue
        if "." in hp.key:
            if hp.key.split(".", 1)[0] in ("space", "tuner", "run_dir", "resume"):
                raise EmgtfError(f"{where}: '{hp.key}' is a setting of the search, not of a trial")
            if OmegaConf.select(base_cfg, hp.key, default="__absent__") == "__absent__":
                raise EmgtfError(f"{where}: unknown config key '{hp.key}' (not in the fit config)")
            if isinstance(OmegaConf.select(base_cfg, hp.key), DictConfig):
                raise EmgtfError(f"{where}: '{hp.key}' is a config section; name one of its keys")
            continue
        for option, family in families_of(space, hp, base_family).items():
            try:
                known = models.default_hyperparameters(family)
            except EmgtfError as e:
                raise EmgtfError(f"{where}: {e}") from None
            if hp.key not in known or hp.key == "family":
                raise EmgtfError(
                    f"{where}: unknown hyperparameter '{hp.key}' for model {option} (family {family}; "
                    f"known: {', '.join(sorted(known))})"
                )


def summarize_values(values: Mapping, names: Sequence[str] | None = None) -> str:
    """``a=1, b=0.0003`` for log lines."""
    out = []
    for name, value in values.items():
        if names is not None and name not in names:
            continue
        out.append(f"{name}={_short(value)}")
    return ", ".join(out)


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
