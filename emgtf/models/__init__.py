"""The model zoo: Keras functional models from raw EMG to per-frame log-probabilities.

Every model takes ``emg`` float32 ``(batch, samples, 2, 16)`` (any number of samples) and returns
log-probabilities ``(batch, frames, 99)`` (98 keys + CTC blank 98). The spectrogram front end
(LogSpectrogram, SpecAugment, optional TemporalCropResize, SpectrogramNorm) is inside the model,
so a saved ``.keras`` file transcribes raw signal. ``model.name`` is the family name.

    model = build("tds_conv_ctc")                       # Meta's baseline, 5,293,315 parameters
    model = build("rnn", cell="gru", hidden_size=128)   # any hyperparameter of the family
    initialise_from(model, source)                      # fine-tuning: weights of a trained model
    frames = emission_lengths(model, emg_lengths)       # frames of output per input length
"""

from __future__ import annotations

import math

from types import ModuleType

import keras

from emgtf.errors import EmgtfError
from emgtf.models import conformer, conv_resnet, hybrid, rnn, splashnet, tcn, tds, transformer
from emgtf.models.hyperparameters import family_defaults, resolve
from emgtf.models.emission import EmissionRule, emission_lengths, emitted_frames

__all__ = [
    "EmissionRule",
    "available",
    "build",
    "default_hyperparameters",
    "description",
    "emission_lengths",
    "emission_rule",
    "emitted_frames",
    "initialise_from",
    "trainable_parameters",
]

# A family: NAME, DESCRIPTION, build(hp), emission_rule(hp) (a module, or a variant); its
# defaults are configs/model/<NAME>.yaml (hyperparameters.family_defaults).
_FAMILIES: dict[str, ModuleType] = {
    m.NAME: m
    for m in (tds, rnn, tcn, hybrid, conv_resnet, transformer, conformer, splashnet.SPLASHNET,
              splashnet.SPLASHNET_MINI)
}


def available() -> list[str]:
    """Names of the model families, the baseline first."""
    return list(_FAMILIES)


def _family(name: str) -> ModuleType:
    if name not in _FAMILIES:
        raise EmgtfError(f"unknown model {name!r} (available: {', '.join(_FAMILIES)})")
    return _FAMILIES[name]


def description(name: str) -> str:
    """One line on what family ``name`` is."""
    return _family(name).DESCRIPTION


def default_hyperparameters(name: str) -> dict:
    """All hyperparameters of family ``name`` with their defaults (a fresh dict)."""
    family = _family(name)
    return resolve(name, family_defaults(family.NAME), {})


def build(name: str, **hyperparameters) -> keras.Model:
    """A new model of family ``name``; unknown or invalid hyperparameters raise EmgtfError."""
    family = _family(name)
    hp = resolve(name, family_defaults(family.NAME), hyperparameters)
    return family.build(hp)


def trainable_parameters(model: keras.Model) -> int:
    """The model's trainable parameter count (what the families table and the tuner report)."""
    return sum(math.prod(w.shape) for w in model.trainable_weights)


def emission_rule(name: str, **hyperparameters) -> str:
    """Human-readable output length, e.g. ``frames - 124``, frames = 1 + (samples - 64) // 16."""
    family = _family(name)
    hp = resolve(name, family_defaults(family.NAME), hyperparameters)
    return family.emission_rule(hp)


def initialise_from(model: keras.Model, source: keras.Model) -> None:
    """Sets ``model``'s weights from ``source``, a model of the same family (fine-tuning).

    The same architecture: copied as they are (a mismatch raises Keras's ValueError). A source
    whose hands share one MLP and TDS stack (``share_hands``) into a model whose hands have their
    own (``share_hands=false`` with ``split_hands``): each hand starts from the shared weights, so
    the outputs are the same until training moves the hands apart.
    """
    if tds.can_unshare(source, model):
        tds.unshare_hands(source, model)
    else:
        model.set_weights(source.get_weights())
