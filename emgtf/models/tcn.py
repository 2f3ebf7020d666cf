"""``tcn``: temporal convolutional network, dilated causal convolutions with residual sums.

Layer i convolves ``kernel_size`` frames dilated by ``dilation_base ** i``, so the receptive
field grows exponentially with depth (defaults: 127 frames, about 1 s) at constant frame rate.
"""

from __future__ import annotations

import keras

from emgtf.models import frontend
from emgtf.models import hyperparameters as H
from emgtf.models.family import Family
from emgtf.models.layers import ConvBlock1D
from emgtf.models.regularizers import Regularization

NAME = "tcn"


def build(hp: dict) -> keras.Model:
    reg = Regularization.from_hyperparameters(hp)
    hidden = H.positive_int(NAME, hp, "hidden_size")
    kernel_size = H.positive_int(NAME, hp, "kernel_size")
    base = H.positive_int(NAME, hp, "dilation_base")
    inputs = frontend.emg_input()
    x = frontend.spectrogram(inputs, hp)
    x = frontend.features(x, hp, reg, NAME)
    x = reg.dense(hidden, name="tcn_input")(x)
    for i in range(H.positive_int(NAME, hp, "num_layers")):
        x = ConvBlock1D(
            hidden,
            kernel_size,
            dilation=base**i,
            causal=True,
            dropout=reg.dropout,
            batch_norm=reg.batch_norm,
            kernel_regularizer=reg.kernel_regularizer(),
            name=f"tcn_block_{i + 1}",
        )(x)
    return keras.Model(inputs, frontend.head(x, reg), name=NAME)


def emission_rule(hp: dict) -> str:
    return "frames"


FAMILY = Family(NAME, "dilated causal residual convolutions", build, emission_rule)
