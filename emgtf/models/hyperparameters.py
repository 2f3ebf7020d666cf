"""Hyperparameter defaults and checking shared by the model families.

Every family's hyperparameters are the common ones (front end, front, regularisers) plus its own,
and their defaults are written once, in the shipped YAML: ``configs/model/_frontend.yaml`` and
``configs/model/<family>.yaml`` (``family_defaults``), which the commands compose with Hydra
and ``emgtf.models.build`` reads from code.
Mistakes surface as one-line ``EmgtfError`` messages that name the model and the key, since
they usually come from a config file or a command line.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence

import yaml

from emgtf import paths
from emgtf.checks import is_int
from emgtf.errors import EmgtfError

# What every family accepts beside its own: the front end and regularisers of
# configs/model/_frontend.yaml, which each family's YAML lists first in its defaults.
FRONTS = ("rotation_mlp", "dense")
SPECTRA = ("full", "6band")
NORMS = ("batch", "rolling", "none")


def family_defaults(name: str) -> dict:
    """The hyperparameters of ``configs/model/<name>.yaml`` (a fresh dict): the one place a
    family's defaults are written, read with PyYAML as Hydra composes it (its defaults list in
    order, ``_self_`` last unless listed), ``family`` left out."""
    return copy.deepcopy(_read_model_config(name))


@functools.cache
def _read_model_config(name: str) -> dict:
    path = paths.config_dir() / "model" / f"{name}.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise EmgtfError(f"{path}: cannot read the defaults of model {name!r} ({e})") from None
    entries = list(doc.pop("defaults", None) or [])
    if "_self_" not in entries:
        entries.append("_self_")
    out: dict = {}
    for entry in entries:
        out.update(doc if entry == "_self_" else _read_model_config(str(entry)))
    out.pop("family", None)
    return out


def fail(family: str, key: str, problem: str) -> EmgtfError:
    return EmgtfError(f"model {family!r}: hyperparameter {key!r}: {problem}")


def resolve(family: str, defaults: Mapping, overrides: Mapping) -> dict:
    """Defaults updated with ``overrides``; an unknown key is an error naming key and model."""
    unknown = [k for k in overrides if k not in defaults]
    if unknown:
        raise EmgtfError(
            f"model {family!r}: unknown hyperparameter {unknown[0]!r} "
            f"(known: {', '.join(sorted(defaults))})"
        )
    hp = copy.deepcopy(dict(defaults))
    for key, value in overrides.items():
        # Config systems (OmegaConf) hand over their own list type; the layers want plain lists.
        if isinstance(value, Sequence) and not isinstance(value, str):
            value = list(value)
        hp[key] = value
    _check_common(family, hp)
    return hp


def positive_int(family: str, hp: Mapping, key: str, *, minimum: int = 1) -> int:
    value = hp[key]
    if not is_int(value) or value < minimum:
        raise fail(family, key, f"expected an integer >= {minimum}, got {value!r}")
    return value


def int_list(family: str, hp: Mapping, key: str) -> list[int]:
    value = hp[key]
    if is_int(value):
        value = [value]
    if (
        not isinstance(value, list)
        or not value
        or any(not is_int(v) or v < 1 for v in value)
    ):
        raise fail(family, key, f"expected a non-empty list of positive integers, got {value!r}")
    return value


def choice(family: str, hp: Mapping, key: str, options: Sequence[str]) -> str:
    value = hp[key]
    if value not in options:
        raise fail(family, key, f"expected one of {', '.join(options)}, got {value!r}")
    return value


def boolean(family: str, hp: Mapping, key: str) -> bool:
    value = hp[key]
    if not isinstance(value, bool):
        raise fail(family, key, f"expected true or false, got {value!r}")
    return value


def _nonnegative_float(family: str, hp: Mapping, key: str, *, below_one: bool = False) -> None:
    value = hp[key]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    if ok and below_one:
        ok = value < 1
    if not ok:
        bound = "in [0, 1)" if below_one else ">= 0"
        raise fail(family, key, f"expected a number {bound}, got {value!r}")


def _check_preprocessing(family: str, hp: Mapping) -> None:
    from emgtf import NUM_CHANNELS, SAMPLE_RATE

    last = NUM_CHANNELS - 1
    kept = hp["electrodes"]
    if kept is not None:
        if (not isinstance(kept, list) or not kept or len(set(kept)) != len(kept)
                or any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c <= last
                       for c in kept)):
            raise fail(family, "electrodes", f"expected distinct electrode indices in 0..{last}, at "
                       f"least one, or null for all, got {kept!r}")
        if hp["electrode_start"] != 0 or hp["electrode_count"] is not None:
            raise fail(family, "electrodes", "give electrodes or electrode_start / electrode_count, "
                       "not both")
    start = hp["electrode_start"]
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= last:
        raise fail(family, "electrode_start", f"expected an electrode index in 0..{last}, got {start!r}")
    count = hp["electrode_count"]
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1
                              or start + count > NUM_CHANNELS):
        raise fail(family, "electrode_count", f"electrodes {start}..{start}+{count!r}-1 are not a "
                   f"non-empty range in 0..{last}")
    positive_int(family, hp, "downsample")
    boolean(family, hp, "anti_alias")
    boolean(family, hp, "minmax")
    cutoff, nyquist = hp["lowpass_hz"], SAMPLE_RATE / 2
    if cutoff is not None:
        if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)) or cutoff <= 0:
            raise fail(family, "lowpass_hz", f"expected a cutoff in Hz > 0, or null, got {cutoff!r}")
        if cutoff >= nyquist:
            raise fail(family, "lowpass_hz", f"{cutoff} Hz is not below the Nyquist frequency "
                       f"({nyquist:g} Hz) of the {SAMPLE_RATE} Hz input")
    taps, hop = positive_int(family, hp, "lowpass_taps"), hp["downsample"] * hp["hop_length"]
    if cutoff is not None and (taps - 1) % hop:
        raise fail(family, "lowpass_taps", f"expected 1 + a multiple of the frame hop ({hop} input "
                   f"samples), so that a frame reads whole hops (streaming), e.g. "
                   f"{1 + -(-(taps - 1) // hop) * hop}; got {taps}")
    positive_int(family, hp, "random_crop", minimum=0)


def _check_common(family: str, hp: Mapping) -> None:
    positive_int(family, hp, "n_fft", minimum=2)
    positive_int(family, hp, "hop_length")
    _check_preprocessing(family, hp)
    boolean(family, hp, "spec_augment")
    for key in (
        "n_time_masks", "time_mask_param", "n_freq_masks", "freq_mask_param", "temporal_crop"
    ):
        positive_int(family, hp, key, minimum=0)
    if hp["seed"] is not None:
        positive_int(family, hp, "seed", minimum=0)
    choice(family, hp, "front", FRONTS)
    choice(family, hp, "spectrum", SPECTRA)
    choice(family, hp, "norm", NORMS)
    int_list(family, hp, "mlp_features")
    _nonnegative_float(family, hp, "dropout", below_one=True)
    boolean(family, hp, "batch_norm")
    _nonnegative_float(family, hp, "l2")
    _nonnegative_float(family, hp, "l1")
