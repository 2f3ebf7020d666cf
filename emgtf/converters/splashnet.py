"""SplashNet's checkpoints (arXiv 2506.12356): the hyperparameters its ``TDSConvCTCModule`` saves
and the state-dict layout they imply (DATA.md, "SplashNet"; every layout of both sizes is listed in
``shared/fixtures/splashnet-checkpoint-layout.txt``).

The module's saved hyperparameters besides Meta's (``in_features``, ``mlp_features``,
``block_channels``, ``kernel_width``, ``optimizer``, ``lr_scheduler``, ``decoder``):

- ``spec_norm``: the string ``'RollingTimeNorm'`` (no parameters), ``'BatchNorm2d'`` (Meta's
  SpectrogramNorm, ``model.0.batch_norm.*``; the module's default) or ``'None'`` (no
  normalisation); emgtf's ``norm`` rolling, batch, none;
- ``share_hand_weights`` (default false): one rotation-invariant MLP (``model.1.mlps.0``) for both
  hands, and the TDS blocks (``model.3.tds_conv_blocks.*``) run on each hand's half of the
  features with the same weights (LayerNorms and FC blocks half-width: ``mlp_features[-1]``);
  un-shared, a MLP per hand (``model.1.mlps.{0,1}``) and Meta's TDS encoder over both hands'
  features (``2 * mlp_features[-1]``). emgtf: ``share_hands`` true / false with ``split_hands``
  false;
- ``split_decoding`` (default false): saved by the module, but no layer depends on it, so it
  changes nothing in the converted model (it is checked to be a boolean);
- ``in_features`` 96 (16 electrodes x 6 bands of summed log bins, emgtf ``spectrum=6band``) or
  528 (16 x the 33 bins, ``spectrum=full``).

The classifier ``model.4`` always sees both hands (``2 * mlp_features[-1]`` inputs).

Not read: files of the authors' fine-tuning module, whose per-hand copies are stored as
``left_processor.*``, ``right_processor.*`` and ``shared_part.*`` (the published generic files are
``TDSConvCTCModule``'s); such a file stops at its first key, named as unexpected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from emgtf import NUM_CHANNELS
from emgtf.errors import EmgtfError
from emgtf.models.splashnet import SPLASHNET, SPLASHNET_MINI

__all__ = ["HYPERPARAMETERS", "NORMS", "SPECTRA", "emgtf_hyperparameters", "family", "hyperparameters",
           "is_splashnet"]

# spec_norm as the module saves it -> emgtf's norm.
NORMS = {"RollingTimeNorm": "rolling", "BatchNorm2d": "batch", "None": "none"}
# in_features -> emgtf's spectrum.
SPECTRA = {NUM_CHANNELS * 6: "6band", NUM_CHANNELS * 33: "full"}
# The module's own keys with its defaults.
HYPERPARAMETERS = {"share_hand_weights": False, "split_decoding": False, "spec_norm": "BatchNorm2d"}


def is_splashnet(stored: Mapping) -> bool:
    """Whether a checkpoint's hyperparameters are those of SplashNet's module (Meta's has none
    of its own keys)."""
    return any(k in stored for k in HYPERPARAMETERS)


def hyperparameters(stored: Mapping, fail: Callable[[str], EmgtfError]) -> dict:
    """``share``, ``norm``, ``spectrum`` and ``split_decoding`` of SplashNet hyperparameters
    ``stored`` (the module's defaults for keys it lacks); ``fail(problem)`` makes the error of a
    bad value."""
    hp = {**HYPERPARAMETERS, **{k: stored[k] for k in HYPERPARAMETERS if k in stored}}
    for key in ("share_hand_weights", "split_decoding"):
        if not isinstance(hp[key], bool):
            raise fail(f"hyper_parameters.{key}: expected true or false, got {hp[key]!r}")
    if not isinstance(hp["spec_norm"], str) or hp["spec_norm"] not in NORMS:
        raise fail(f"hyper_parameters.spec_norm: expected one of "
                   f"{', '.join(repr(k) for k in NORMS)}, got {hp['spec_norm']!r}")
    return {
        "share": hp["share_hand_weights"],
        "norm": NORMS[hp["spec_norm"]],
        "split_decoding": hp["split_decoding"],
    }


def spectrum(in_features: int, source: str, fail: Callable[[str], EmgtfError]) -> str:
    if in_features not in SPECTRA:
        raise fail(f"{source} {in_features}: SplashNet's are {NUM_CHANNELS * 6} (16 electrodes x 6 "
                   f"bands) or {NUM_CHANNELS * 33} (16 electrodes x 33 bins)")
    return SPECTRA[in_features]


def family(hp: dict) -> str:
    """emgtf's family: SplashNet-mini's sizes are ``splashnet_mini``, any others ``splashnet``."""
    mini = SPLASHNET_MINI.defaults
    sizes = ("mlp_features", "block_channels", "kernel_width")
    return SPLASHNET_MINI.name if all(hp[k] == mini[k] for k in sizes) else SPLASHNET.name


def emgtf_hyperparameters(hp: dict) -> dict:
    """The arguments of ``emgtf.models.build`` beside the sizes: SplashNet's un-shared hands
    are one TDS encoder over both (``split_hands`` false), as its module builds them."""
    return {"share_hands": hp["share"], "split_hands": False, "norm": hp["norm"],
            "spectrum": hp["spectrum"]}
