"""``conv_resnet``: 1-D residual convolution network over time, optionally with a BiGRU on top.

Each residual block is two same-padded convolutions (BatchNorm, ReLU) with the ReLU after the
residual sum, ResNet style. ``gru_size`` > 0 adds ``gru_layers`` bidirectional GRU layers, the
a student project's CNN + BiGRU on emg2qwerty (19.45 % single-user test CER with Gaussian noise augmentation).
"""

from __future__ import annotations

import keras

from emgtf.models import frontend
from emgtf.models import hyperparameters as H
from emgtf.models.family import Family
from emgtf.models.layers import ConvBlock1D
from emgtf.models.regularizers import Regularization
from emgtf.models.rnn import recurrent_stack

NAME = "conv_resnet"


def build(hp: dict) -> keras.Model:
    reg = Regularization.from_hyperparameters(hp)
    channels = H.positive_int(NAME, hp, "channels")
    kernel_size = H.positive_int(NAME, hp, "kernel_size")
    gru_size = H.positive_int(NAME, hp, "gru_size", minimum=0)
    gru_layers = H.positive_int(NAME, hp, "gru_layers")
    inputs = frontend.emg_input()
    x = frontend.spectrogram(inputs, hp)
    x = frontend.features(x, hp, reg, NAME)
    x = reg.dense(channels, name="resnet_input")(x)
    for i in range(H.positive_int(NAME, hp, "num_blocks")):
        x = ConvBlock1D(
            channels,
            kernel_size,
            convs=2,
            relu_after_sum=True,
            dropout=reg.dropout,
            batch_norm=reg.batch_norm,
            kernel_regularizer=reg.kernel_regularizer(),
            name=f"resnet_block_{i + 1}",
        )(x)
    if gru_size > 0:
        x = recurrent_stack(
            x,
            cell="gru",
            hidden_size=gru_size,
            num_layers=gru_layers,
            bidirectional=True,
            reg=reg,
            prefix="gru",
        )
    return keras.Model(inputs, frontend.head(x, reg), name=NAME)


def emission_rule(hp: dict) -> str:
    return "frames"


FAMILY = Family(NAME, "1-D residual conv net (+ optional BiGRU)", build, emission_rule)
