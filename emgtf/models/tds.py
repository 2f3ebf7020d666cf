"""``tds_conv_ctc``: Meta's TDS-Conv CTC baseline (Hannun et al. 2019 time-depth separable blocks).

With the default hyperparameters this is the emg2qwerty reference model, 5,293,315 trainable
parameters: SpectrogramNorm, per-band rotation-invariant MLP (528 -> 384), four TDS blocks of
24 channels x 32 width with 32-frame kernels, Linear(768 -> 99), log-softmax.
"""

from __future__ import annotations

import keras

from emgtf.models import frontend
from emgtf.models import hyperparameters as H
from emgtf.models.layers import FoldBands, TDSConvBlock, TDSFullyConnectedBlock, UnfoldBands
from emgtf.models.regularizers import Regularization

NAME = "tds_conv_ctc"
DESCRIPTION = "Meta's TDS-Conv CTC baseline"
DEFAULTS = {
    "block_channels": [24, 24, 24, 24],
    "kernel_width": 32,
    "share_hands": False,  # SplashNet: one front MLP and one TDS stack for both hands
}


def tds_blocks(x, hp: dict, reg: Regularization, family: str, *, width: int | None = None):
    """The TDS encoder: a conv block then a fully connected block per entry of block_channels.
    ``width``: features per frame of ``x`` (default: the front's)."""
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
            name=f"tds_conv_{i + 1}",
        )(x)
        x = TDSFullyConnectedBlock(
            dropout=reg.dropout,
            batch_norm=reg.batch_norm,
            kernel_regularizer=reg.kernel_regularizer(),
            name=f"tds_fc_{i + 1}",
        )(x)
    return x


def frames_lost(hp: dict) -> int:
    return len(hp["block_channels"]) * (hp["kernel_width"] - 1)


def build(hp: dict, name: str = NAME) -> keras.Model:
    """The model; with ``share_hands`` the hands meet only in the classifier (SplashNet's
    split-and-share): one front MLP for both, and one TDS stack run on each hand's half of the
    features (LayerNorm over the half)."""
    reg = Regularization.from_hyperparameters(hp)
    share = H.boolean(name, hp, "share_hands")
    inputs = frontend.emg_input()
    x = frontend.spectrogram(inputs, hp)
    x = frontend.features(x, hp, reg, name, share_bands=share)
    if share:
        x = FoldBands(name="fold_hands")(x)
        x = tds_blocks(x, hp, reg, name, width=hp["mlp_features"][-1])
        x = UnfoldBands(name="unfold_hands")(x)
    else:
        x = tds_blocks(x, hp, reg, name)
    return keras.Model(inputs, frontend.head(x, reg), name=name)


def emission_rule(hp: dict) -> str:
    return f"frames - {frames_lost(hp)}"
