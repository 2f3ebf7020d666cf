"""The model zoo: Keras functional models from raw EMG to per-frame log-probabilities.

Every model takes ``emg`` float32 ``(batch, samples, 2, 16)`` (any number of samples) and returns
log-probabilities ``(batch, frames, 99)`` (98 keys + CTC blank 98). The spectrogram front end
(LogSpectrogram, SpecAugment, optional TemporalCropResize, SpectrogramNorm) is inside the model,
so a saved ``.keras`` file transcribes raw signal. ``model.name`` is the family name.

    model = build("tds_conv_ctc")                       # Meta's baseline, 5,293,315 parameters
    model = build("rnn", cell="gru", hidden_size=128)   # any hyperparameter of the family
    initialize_from(model, source)                      # fine-tuning: weights of a trained model
    frames = emission_lengths(model, emg_lengths)       # frames of output per input length
"""

from __future__ import annotations

import math

import keras

from emgtf.errors import EmgtfError
from emgtf.models import (
    conformer,
    conv_resnet,
    rnn,
    splashnet,
    tcn,
    tds_conv_ctc,
    tds_rnn,
    transformer,
)
from emgtf.models.family import Family
from emgtf.models.hyperparameters import resolve
from emgtf.models.emission import EmissionRule, emission_lengths, emitted_frames

__all__ = [
    "EmissionRule",
    "Family",
    "available",
    "build",
    "default_hyperparameters",
    "description",
    "emission_lengths",
    "emission_rule",
    "emitted_frames",
    "initialize_from",
    "trainable_parameters",
]

# The registry, the baseline first (the order of available() and the families table); each
# family's defaults are configs/model/<name>.yaml (Family.defaults).
_FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (tds_conv_ctc.FAMILY, rnn.FAMILY, tcn.FAMILY, tds_rnn.FAMILY, conv_resnet.FAMILY,
              transformer.FAMILY, conformer.FAMILY, splashnet.SPLASHNET, splashnet.SPLASHNET_MINI)
}


def available() -> list[str]:
    """Names of the model families, the baseline first."""
    return list(_FAMILIES)


def _family(name: str) -> Family:
    """The registered family ``name``; an unknown name raises EmgtfError listing the known ones."""
    if name not in _FAMILIES:
        raise EmgtfError(f"unknown model {name!r} (available: {', '.join(_FAMILIES)})")
    return _FAMILIES[name]


def description(name: str) -> str:
    """One line on what family ``name`` is."""
    return _family(name).description


def default_hyperparameters(name: str) -> dict:
    """All hyperparameters of family ``name`` with their defaults (a fresh dict)."""
    return resolve(name, _family(name).defaults, {})


def build(name: str, **hyperparameters) -> keras.Model:
    """A new model of family ``name``; unknown or invalid hyperparameters raise EmgtfError."""
    chosen = _family(name)
    return chosen.build(resolve(name, chosen.defaults, hyperparameters))


def trainable_parameters(model: keras.Model) -> int:
    """The model's trainable parameter count (what the families table and the tuner report)."""
    return sum(math.prod(w.shape) for w in model.trainable_weights)


def emission_rule(name: str, **hyperparameters) -> str:
    """Human-readable output length, e.g. ``frames - 124``, frames = 1 + (samples - 64) // 16."""
    chosen = _family(name)
    return chosen.emission_rule(resolve(name, chosen.defaults, hyperparameters))


def initialize_from(model: keras.Model, source: keras.Model) -> None:
    """Sets ``model``'s weights from ``source``, a model of the same family (fine-tuning).

    The same architecture: copied as they are (a mismatch raises Keras's ValueError). A source
    whose hands share one MLP and TDS stack (``share_hands``) into a model whose hands have their
    own (``share_hands=false`` with ``split_hands``): each hand starts from the shared weights, so
    the outputs are the same until training moves the hands apart.
    """
    if tds_conv_ctc.can_unshare(source, model):
        tds_conv_ctc.unshare_hands(source, model)
    else:
        model.set_weights(source.get_weights())
