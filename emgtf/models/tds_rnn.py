"""``tds_rnn``: Meta's TDS front (rotation-invariant MLP + TDS blocks) under a BiLSTM or BiGRU.

The TDS blocks see 32-frame neighbourhoods; the bidirectional RNN on top adds context across the
whole window, which student projects on emg2qwerty found to matter more than depth.
"""

from __future__ import annotations

import keras

from emgtf.models import frontend, tds_conv_ctc
from emgtf.models import hyperparameters as H
from emgtf.models.family import Family
from emgtf.models.regularizers import Regularization
from emgtf.models.rnn import CELLS, recurrent_stack

NAME = "tds_rnn"


def build(hp: dict) -> keras.Model:
    reg = Regularization.from_hyperparameters(hp)
    inputs = frontend.emg_input()
    x = frontend.spectrogram(inputs, hp)
    x = frontend.features(x, hp, reg, NAME)
    x = tds_conv_ctc.tds_blocks(x, hp, reg, NAME)
    x = recurrent_stack(
        x,
        cell=H.choice(NAME, hp, "cell", CELLS),
        hidden_size=H.positive_int(NAME, hp, "hidden_size"),
        num_layers=H.positive_int(NAME, hp, "num_layers"),
        bidirectional=True,
        reg=reg,
        prefix="rnn",
    )
    return keras.Model(inputs, frontend.head(x, reg), name=NAME)


def emission_rule(hp: dict) -> str:
    return tds_conv_ctc.emission_rule(hp)


FAMILY = Family(NAME, "TDS front + BiLSTM / BiGRU", build, emission_rule)
