"""Checks of a fit config's values, by type and range, before anything is built or written.

A wrong value (``optimizer.learning_rate=abc``, ``trainer.padding=[1]``) would otherwise surface
minutes later as a TensorFlow traceback, or not at all (a negative learning rate trains
"fine", upwards). Each failure is one line naming the key, what it holds and what it must be.
``check_window_fits`` needs the built model, and runs before the run folder is claimed.
"""

from __future__ import annotations

import math

from omegaconf import OmegaConf

from emgtf.checks import is_int, is_number
from emgtf.config import GROUPS, required
from emgtf.errors import EmgtfError
from emgtf.training.distribute import check_config
from emgtf.training.runtime import jit_compile_value

# Sections of a fit config that a saved run's config.yaml must have to be continued: its groups.
RUN_SECTIONS = GROUPS


def _int(cfg, key: str, minimum: int = 1) -> int:
    value = OmegaConf.select(cfg, key)
    if not is_int(value) or value < minimum:
        raise EmgtfError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _number(cfg, key: str, low: float, high: float, *, low_open=False, high_open=False, null=False,
            default=None):
    value = OmegaConf.select(cfg, key, default=default)
    if value is None and null:
        return None
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    ok = is_number(value) and (value > low if low_open else value >= low) and (
        value < high if high_open else value <= high)
    if not ok:
        if high == math.inf:
            bounds = f"> {low:g}" if low_open else f">= {low:g}"
        else:
            bounds = f"in {left}{low:g}, {high:g}{right}"
        raise EmgtfError(f"{key} must be a number {bounds}{' or null' if null else ''}, got {value!r}")
    return value


def check_training_config(cfg) -> None:
    """The trainer, optimizer and schedule values of a fit config (see the module docstring)."""
    for key in ("trainer.epochs", "trainer.batch_size", "trainer.window_length", "trainer.val_batch_size"):
        _int(cfg, key)
    _int(cfg, "seed", 0)
    if cfg.trainer.get("stride") is not None:
        _int(cfg, "trainer.stride")
    padding = cfg.trainer.get("padding")
    padding = list(padding) if OmegaConf.is_list(padding) or isinstance(padding, (list, tuple)) else padding
    if (not isinstance(padding, list) or len(padding) != 2
            or any(not is_int(p) or p < 0 for p in padding)):
        raise EmgtfError(f"trainer.padding must be two integers >= 0 (left, right), got {padding!r}")
    _number(cfg, "trainer.fraction", 0, 1, low_open=True, default=1.0)
    check_config(cfg.trainer)
    jit_compile_value(cfg.trainer.get("jit_compile", "auto"))
    if cfg.trainer.get("verbose", "auto") not in ("auto", 0, 1, 2):
        raise EmgtfError(f"trainer.verbose must be auto, 0, 1 or 2, got {cfg.trainer.verbose!r}")

    # The optimizer and schedule keys have no defaults here: their YAML sets every one (a missing
    # key is an error naming it, from config.required).
    for key in ("learning_rate", "beta_1", "beta_2", "epsilon", "clipnorm", "weight_decay"):
        required(cfg.optimizer, key, "optimizer")
    _number(cfg, "optimizer.learning_rate", 0, math.inf, low_open=True)
    _number(cfg, "optimizer.beta_1", 0, 1, high_open=True)
    _number(cfg, "optimizer.beta_2", 0, 1, high_open=True)
    _number(cfg, "optimizer.epsilon", 0, math.inf, low_open=True)
    _number(cfg, "optimizer.clipnorm", 0, math.inf, low_open=True, null=True)
    _number(cfg, "optimizer.weight_decay", 0, math.inf, null=True)
    if required(cfg.schedule, "name", "schedule") == "warmup_cosine":
        for key in ("warmup_fraction", "initial_learning_rate", "final_learning_rate", "per_epoch"):
            required(cfg.schedule, key, "schedule")
        _number(cfg, "schedule.warmup_fraction", 0, 1)
        _number(cfg, "schedule.initial_learning_rate", 0, math.inf)
        _number(cfg, "schedule.final_learning_rate", 0, math.inf)


def check_window_fits(model, cfg) -> None:
    """A training window (``trainer.window_length`` + ``trainer.padding``) must give the model at
    least one emission; else every window would be left out of the loss and the run would train
    on nothing. The message names the smallest window length that works."""
    from emgtf.models.emission import EmissionRule
    from emgtf.models.frontend import check_preprocessing_fits

    rule = EmissionRule.from_model(model)
    pad = sum(int(p) for p in cfg.trainer.padding)
    window = int(cfg.trainer.window_length)
    check_preprocessing_fits(model, rule, window + pad)
    if rule.emissions(window + pad) >= 1:
        return
    need = rule.samples_for(1)
    sizes = ", ".join(f"model.{k}={cfg.model[k]}" for k in ("n_fft", "kernel_width") if k in cfg.model)
    raise EmgtfError(
        f"trainer.window_length={window}: model '{model.name}' ({sizes}) emits no frame for a window "
        f"of {window} + {pad} padding samples; it needs at least {need} samples, so set "
        f"trainer.window_length >= {max(1, need - pad)} or choose smaller model sizes"
    )


def check_run_config(cfg, path) -> None:
    """A saved run's config.yaml (``path``) is a fit config: every section, and a model family."""
    missing = [s for s in RUN_SECTIONS if not OmegaConf.is_dict(cfg.get(s))]
    if missing:
        raise EmgtfError(f"{path}: not an emgtf.fit run config (no '{missing[0]}' section); "
                         "resume=true continues only runs that emgtf.fit started")
    if not cfg.model.get("family"):
        raise EmgtfError(f"{path}: not an emgtf.fit run config (no model.family)")
