"""``tds_conv_ctc``: Meta's TDS-Conv CTC baseline (Hannun et al. 2019 time-depth separable blocks).

With the default hyperparameters this is the emg2qwerty reference model, 5,293,315 trainable
parameters: SpectrogramNorm, per-band rotation-invariant MLP (528 -> 384), four TDS blocks of
24 channels x 32 width with 32-frame kernels, Linear(768 -> 99), log-softmax.
"""

from __future__ import annotations

import re

import keras
import numpy as np

from emgtf import NUM_BANDS
from emgtf.errors import EmgtfError
from emgtf.models import frontend
from emgtf.models import hyperparameters as H
from emgtf.models.family import Family
from emgtf.models.layers import (
    FoldBands,
    RotationInvariantMLP,
    SplitBands,
    TDSConvBlock,
    TDSFullyConnectedBlock,
    UnfoldBands,
)
from emgtf.models.regularizers import Regularization

NAME = "tds_conv_ctc"
# Layer names ``unshare_hands`` reads: a shared stack sits between these two, and each hand's
# own stack is the shared one's layers with this prefix.
_FOLD, _SPLIT = "fold_hands", "split_hands"
_HAND_PREFIX = re.compile(r"^hand(\d+)_")


def tds_blocks(x, hp: dict, reg: Regularization, family: str, *, width: int | None = None,
               prefix: str = ""):
    """The TDS encoder: a conv block then a fully connected block per entry of block_channels.
    ``width``: features per frame of ``x`` (default: the front's); ``prefix``: of the layer names."""
    width = frontend.front_width(hp) if width is None else width
    kernel_width = H.positive_int(family, hp, "kernel_width")
    for i, channels in enumerate(H.int_list(family, hp, "block_channels")):
        if width % channels:
            raise H.fail(
                family, "block_channels", f"{channels} does not divide the {width} front features"
            )
        x = TDSConvBlock(
            channels,
            kernel_width,
            dropout=reg.dropout,
            batch_norm=reg.batch_norm,
            kernel_regularizer=reg.kernel_regularizer(),
            name=f"{prefix}tds_conv_{i + 1}",
        )(x)
        x = TDSFullyConnectedBlock(
            dropout=reg.dropout,
            batch_norm=reg.batch_norm,
            kernel_regularizer=reg.kernel_regularizer(),
            name=f"{prefix}tds_fc_{i + 1}",
        )(x)
    return x


def frames_lost(hp: dict) -> int:
    return len(hp["block_channels"]) * (hp["kernel_width"] - 1)


def build(hp: dict, name: str = NAME) -> keras.Model:
    """The model; with ``share_hands`` the hands meet only in the classifier (SplashNet's
    split-and-share): one front MLP for both, and one TDS stack run on each hand's half of the
    features (LayerNorm over the half). With ``split_hands`` alone the hands are split the same
    way but each has its own MLP and TDS stack (layers ``hand{b}_tds_*``)."""
    reg = Regularization.from_hyperparameters(hp)
    share = H.boolean(name, hp, "share_hands")
    split = H.boolean(name, hp, "split_hands")
    inputs = frontend.emg_input()
    x = frontend.spectrogram(inputs, hp)
    x = frontend.features(x, hp, reg, name, share_bands=share)
    hand_width = hp["mlp_features"][-1]
    if share:
        x = FoldBands(name=_FOLD)(x)
        x = tds_blocks(x, hp, reg, name, width=hand_width)
        x = UnfoldBands(name="unfold_hands")(x)
    elif split:
        hands = SplitBands(name=_SPLIT)(x)
        x = keras.layers.Concatenate(name="join_hands")([
            tds_blocks(h, hp, reg, name, width=hand_width, prefix=f"hand{b}_")
            for b, h in enumerate(hands)
        ])
    else:
        x = tds_blocks(x, hp, reg, name)
    return keras.Model(inputs, frontend.head(x, reg), name=name)


def emission_rule(hp: dict) -> str:
    return f"frames - {frames_lost(hp)}"


def _layer_names(model: keras.Model) -> set[str]:
    return {layer.name for layer in model.layers}


def can_unshare(source: keras.Model, model: keras.Model) -> bool:
    """Whether ``source`` shares its hands' weights and ``model`` splits them, each its own."""
    return _FOLD in _layer_names(source) and _SPLIT in _layer_names(model)


def unshare_hands(source: keras.Model, model: keras.Model) -> None:
    """Sets ``model``'s weights (a TDS-family model with ``split_hands``, each hand its own MLP
    and TDS stack) from ``source`` (the same model with ``share_hands``): every hand starts from
    the shared weights, so the two give the same outputs until training moves the hands apart
    (SplashNet's fine-tuning). Any other difference between the two raises EmgtfError naming the
    layer."""
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        shared_name = _HAND_PREFIX.sub("", layer.name)
        try:
            shared = source.get_layer(shared_name)
        except ValueError:
            raise EmgtfError(
                f"cannot un-share the hands: the shared model has no layer {shared_name!r} "
                f"for {layer.name!r}"
            ) from None
        values = shared.get_weights()
        if isinstance(layer, RotationInvariantMLP) and shared.share_bands and not layer.share_bands:
            # One MLP (leading axis 1) becomes one per band, each a copy.
            values = [np.repeat(v, NUM_BANDS, axis=0) for v in values]
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise EmgtfError(
                f"cannot un-share the hands: layer {layer.name!r} has weights of shapes {expected}, "
                f"the shared model's {shared_name!r} {[v.shape for v in values]} (other "
                "hyperparameters differ?)"
            )
        layer.set_weights(values)
        used.add(shared_name)
    left = sorted(layer.name for layer in source.layers if layer.weights and layer.name not in used)
    if left:
        raise EmgtfError(f"cannot un-share the hands: the model has no layer for the shared {left[0]!r}")


FAMILY = Family(NAME, "Meta's TDS-Conv CTC baseline", build, emission_rule)
