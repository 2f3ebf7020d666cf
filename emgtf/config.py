"""Experiment configuration: Hydra-composed YAML from configs/, overridable as ``key=value``.

``configs/fit.yaml`` and ``configs/evaluate.yaml`` pick one option from each config group
(``configs/<group>/<option>.yaml``); the command line picks other options (``model=rnn``) or sets
single values (``trainer.epochs=20``) in Hydra's override syntax. We use Hydra's Compose API rather
than ``@hydra.main`` so that a mistake is one line naming the key, not a Hydra traceback, and so that
the training loop can be called from Python (KerasTuner) with the same configs.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from emgtf import paths
from emgtf.errors import EmgtfError
from emgtf.files import first_comment

# The config groups, in the order a reader meets them in fit.yaml. configs/splits is not a group:
# it holds split files (lists of sessions), chosen by data.split.
GROUPS = ("data", "model", "augment", "optimizer", "schedule", "trainer", "decoder", "logger")


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    # Hydra appends its config search path; a user needs the first sentences, not that.
    lines = [ln for ln in lines if not ln.startswith(("Config search path", "provider=", "See https"))]
    return "; ".join(lines)


def config_dir() -> Path:
    return paths.config_dir()


def _initialize():
    # Hydra keeps one global instance; the loop may run many times in a process (tests, tuner).
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    directory = config_dir()
    if not directory.is_dir():
        raise EmgtfError(f"config folder {directory} does not exist (EMGTF_CONFIG_DIR?)")
    return initialize_config_dir(config_dir=str(directory), version_base=None, job_name="emgtf")


def _parse(overrides: Sequence[str]):
    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            parsed.extend(parser.parse_overrides([text]))
        except OverrideParseException as e:
            raise EmgtfError(f"bad override '{text}': {_one_line(e)} (expected key=value)") from None
    for o in parsed:
        if o.is_sweep_override():
            raise EmgtfError(f"bad override '{o.input_line}': sweeps are not supported here")
    return parsed


def override_key(override: str) -> str:
    """The key or group an override sets (``model.dropout`` of ``model.dropout=0.1``, ``x`` of
    ``+x=1`` and ``~x``), from its text alone: commands sort overrides by key before composing."""
    return override.split("=", 1)[0].lstrip("+~")


def chooses_model(override: str) -> bool:
    """``model=...`` (or ``model.family=...``): the override names the family. ``model.x=...``
    only changes a hyperparameter of whichever family is chosen."""
    return override_key(override) in ("model", "model.family")


def parse_value(overrides: Sequence[str], key: str):
    """The value the last of ``overrides`` gives ``key`` (None if none does), read without composing
    a config: for the checks a command makes before its slow imports."""
    value = None
    for o in _parse(overrides):
        if o.key_or_group == key and not o.is_delete():
            value = o.value()
    return value


def group_options(group: str) -> list[str]:
    """The options of a config group (the YAML files in configs/<group>/), sorted."""
    directory = config_dir() / group
    # Files starting with "_" are shared parts that the options include, not options themselves.
    return sorted(p.stem for p in directory.glob("*.yaml") if not p.name.startswith("_"))


def compose(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The config ``configs/<config_name>.yaml`` with its groups and ``overrides`` applied.

    Errors (a misspelt key, an unknown group option, a malformed override) are one-line
    ``EmgtfError`` messages naming the key.
    """
    overrides = list(overrides)
    parsed = _parse(overrides)
    with _initialize():
        try:
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
        except MissingConfigException as e:
            raise _missing_option_error(config_name, parsed, e) from None
        except (HydraException, OmegaConfBaseException) as e:
            raise _override_error(config_name, parsed, e) from None
    OmegaConf.set_struct(cfg, True)
    _refuse_added_keys(config_name, overrides, parsed)
    return cfg


# Sections whose added keys are checked where they are used: model hyperparameters by the family
# (one line naming the unknown one), decoder options by the decoder.
ADDABLE = ("model.", "decoder.")


def _refuse_added_keys(config_name, overrides, parsed) -> None:
    """``+trainer.foo=1`` adds a key no code reads: a typo that would be ignored silently. So does
    ``++trainer.foo=1`` (Hydra's force-add: override the key if it exists, else add it), whose
    override of an existing key is fine."""
    added = [o for o in parsed if (o.is_add() or o.is_force_add())
             and not str(o.key_or_group).startswith(ADDABLE) and o.key_or_group not in GROUPS]
    if not added:
        return
    rest = [text for text, o in zip(overrides, parsed) if o not in added]
    with _initialize():
        base = hydra_compose(config_name=config_name, overrides=rest)
    for o in added:
        if OmegaConf.select(base, o.key_or_group, default="__absent__") == "__absent__":
            raise EmgtfError(f"unknown config key '{o.key_or_group}' (override '{o.input_line}'): emgtf "
                             f"reads no such key{_suggest(config_name, o.key_or_group)}")


def _missing_option_error(config_name, parsed, e) -> EmgtfError:
    for o in parsed:
        group = o.key_or_group
        if group in GROUPS and not isinstance(o.value(), (list, dict)):
            options = group_options(group)
            if str(o.value()) not in options:
                return EmgtfError(
                    f"unknown {group} '{o.value()}' (override '{o.input_line}'): "
                    f"choose one of {', '.join(options)}"
                )
    if not (config_dir() / f"{config_name}.yaml").is_file():
        return EmgtfError(f"config '{config_name}' not found in {config_dir()}")
    return EmgtfError(_one_line(e))


def _override_error(config_name, parsed, e) -> EmgtfError:
    cause = e.__cause__ or e.__context__
    full_key = getattr(cause, "full_key", None)
    message = _one_line(e)
    for o in parsed:
        key = o.key_or_group
        if full_key == key or f"'{key}'" in message:
            if "not in struct" in str(cause) or "Could not override" in message:
                return EmgtfError(f"unknown config key '{key}' (override '{o.input_line}'){_suggest(config_name, key)}")
            return EmgtfError(f"bad override '{o.input_line}': {message}")
    return EmgtfError(message)


def _suggest(config_name: str, key: str) -> str:
    """'; did you mean ...?' from the keys of the default config, or ''."""
    try:
        with _initialize():
            known = _all_keys(hydra_compose(config_name=config_name))
    except Exception:  # a hint must never hide the real error
        return ""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return f"; did you mean '{close[0]}'?" if close else ""


def _all_keys(cfg, prefix: str = "") -> list[str]:
    keys = []
    for k, v in cfg.items_ex(resolve=False) if isinstance(cfg, DictConfig) else []:
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, DictConfig):
            keys.extend(_all_keys(v, full + "."))
    return keys


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """``key=value`` overrides applied to an already composed config (a run's config.yaml).

    Config groups cannot be swapped here: a saved config no longer knows which file a value came
    from.
    """
    cfg = cfg.copy()
    OmegaConf.set_struct(cfg, True)
    for o in _parse(overrides):
        key = o.key_or_group
        if key in GROUPS and not isinstance(cfg.get(key), (int, float, str, bool, type(None))):
            raise EmgtfError(
                f"cannot change config group '{key}' of a saved run (override '{o.input_line}'); "
                f"set single keys such as {key}.<name>=value"
            )
        if o.is_delete():
            raise EmgtfError(f"cannot delete '{key}' from a saved run's config")
        absent = OmegaConf.select(cfg, key, default="__absent__") == "__absent__"
        # + and ++ may add model.* and decoder.* keys (checked where they are used), as in compose.
        if absent and (not (o.is_add() or o.is_force_add()) or not str(key).startswith(ADDABLE)):
            raise EmgtfError(f"unknown config key '{key}' (override '{o.input_line}')")
        try:
            OmegaConf.update(cfg, key, o.value(), merge=True, force_add=o.is_add() or o.is_force_add())
        except OmegaConfBaseException as e:
            raise EmgtfError(f"bad override '{o.input_line}': {_one_line(e)}") from None
    return cfg


def check_complete(cfg: DictConfig, config_name: str = "fit") -> None:
    """Every mandatory value (``???`` in the YAML) is set."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise EmgtfError(
            f"config key '{missing[0]}' must be set (python -m emgtf.{config_name} {missing[0]}=...)"
        )
    try:
        OmegaConf.resolve(cfg.copy())
    except OmegaConfBaseException as e:
        raise EmgtfError(f"config does not resolve: {_one_line(e)}") from None


def required(section, key: str, where: str):
    """``section[key]`` (null allowed), or a one-line EmgtfError naming ``where.key`` if the key is
    absent: the shipped YAML of the group (``configs/<where>/*.yaml``) is the one place its
    defaults are written, so code reads every key and falls back to none."""
    if key not in section:
        raise EmgtfError(f"config key '{where}.{key}' is missing (every configs/{where}/*.yaml sets it)")
    return section[key]


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def to_container(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def load_saved(path: str | os.PathLike) -> DictConfig:
    """A run's saved ``config.yaml``."""
    path = Path(path)
    try:
        cfg = OmegaConf.load(path)
    except FileNotFoundError:
        raise EmgtfError(f"{path} does not exist") from None
    except (OmegaConfBaseException, OSError, ValueError, yaml.YAMLError) as e:
        raise EmgtfError(f"{path}: not a readable config ({_one_line(e)})") from None
    if not isinstance(cfg, DictConfig):
        raise EmgtfError(f"{path}: a config must be a YAML mapping")
    return cfg


def describe_groups(config_name: str, groups: Sequence[str] = GROUPS) -> str:
    """Help text: each group, its options with their one-line descriptions, and the default."""
    defaults = _defaults(config_name)
    out = []
    for group in groups:
        options = group_options(group)
        if not options:
            continue
        default = defaults.get(group)
        out.append(f"  {group}=" + "|".join(options) + (f"   (default: {default})" if default else ""))
        width = max(len(o) for o in options)
        for option in options:
            out.append(f"      {option:<{width}}  {first_comment((config_dir() / group / f'{option}.yaml').read_text())}")
    return "\n".join(out)


def _defaults(config_name: str) -> dict[str, str]:
    import yaml

    path = config_dir() / f"{config_name}.yaml"
    if not path.is_file():
        return {}
    doc = yaml.safe_load(path.read_text()) or {}
    out = {}
    for entry in doc.get("defaults", []):
        if isinstance(entry, Mapping):
            for k, v in entry.items():
                out[str(k)] = str(v)
    return out


def top_level_keys(config_name: str) -> list[tuple[str, str]]:
    """(key, comment) of the plain keys set in ``configs/<config_name>.yaml`` itself."""
    path = config_dir() / f"{config_name}.yaml"
    out = []
    for line in path.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith(("#", "defaults", "-")) and ":" in line:
            key, _, rest = line.partition(":")
            value, _, comment = rest.partition("#")
            if value.strip() or comment.strip():  # a bare "key:" opens a section, not a value
                out.append((key.strip(), comment.strip()))
    return out


def model_spec(cfg) -> tuple[str, dict]:
    """(family, hyperparameters) of the ``model`` config."""
    model_cfg = to_container(cfg.model)
    family = model_cfg.pop("family", None)
    if not family:
        raise EmgtfError("model.family is not set (choose model=<family>, e.g. model=tds_conv_ctc)")
    return str(family), model_cfg


def resolve_data(data_cfg) -> tuple[Path, str]:
    """(data root, split spec) of a ``data`` config; root null = the embedded synthetic dataset."""
    root, split = data_cfg.get("root"), data_cfg.get("split")
    if root is None:
        from emgtf.synth import default_dataset  # here, not at the top: synth loads SciPy (seconds)

        root, split_file = default_dataset()
        return Path(root), str(split if split is not None else split_file)
    if split is None:
        raise EmgtfError(
            "data.split must be set when data.root is: a split name (configs/splits) or a split file"
        )
    return Path(str(root)).expanduser(), str(split)


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

