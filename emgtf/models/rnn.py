"""``rnn``: stacked LSTM or GRU (uni- or bidirectional) over the per-frame features.

Optional strided-convolution subsampling (2x or 4x fewer frames) before the recurrent stack: a
recurrent layer's cost is sequential in the number of frames, and 31 frames/s still leave several
frames per key at typing speed (CTC needs at least one per label).

The best single-user model of the emg2qwerty student projects was a BiLSTM 2 x 256 with dropout 0.2 (plus down-up
resampling and temporal crop augmentations), 11.80 % test CER.
"""

from __future__ import annotations

import keras

from emgtf.models import frontend
from emgtf.models import hyperparameters as H
from emgtf.models.family import Family
from emgtf.models.layers import ConvSubsampling
from emgtf.models.regularizers import Regularization

NAME = "rnn"
CELLS = ("lstm", "gru")
SUBSAMPLING = (1, 2, 4)


def recurrent_stack(
    x,
    *,
    cell: str,
    hidden_size: int,
    num_layers: int,
    bidirectional: bool,
    reg: Regularization,
    prefix: str,
):
    """``num_layers`` recurrent layers returning sequences, each followed by dropout."""
    layer_class = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
    for i in range(num_layers):
        name = f"{prefix}_{i + 1}"
        layer = layer_class(
            hidden_size,
            return_sequences=True,
            kernel_regularizer=reg.kernel_regularizer(),
            recurrent_regularizer=reg.kernel_regularizer(),
            name=f"{name}_{cell}",
        )
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=name)
        x = layer(x)
        x = reg.apply_dropout(x, name=f"{name}_dropout")
    return x


def build(hp: dict) -> keras.Model:
    reg = Regularization.from_hyperparameters(hp)
    inputs = frontend.emg_input()
    x = frontend.spectrogram(inputs, hp)
    x = frontend.features(x, hp, reg, NAME)
    subsampling = hp["subsampling"]
    if subsampling not in SUBSAMPLING:
        raise H.fail(NAME, "subsampling", f"expected 1, 2 or 4, got {subsampling!r}")
    if subsampling > 1:
        x = ConvSubsampling(
            subsampling,
            x.shape[-1],
            batch_norm=reg.batch_norm,
            kernel_regularizer=reg.kernel_regularizer(),
            name="subsampling",
        )(x)
    x = recurrent_stack(
        x,
        cell=H.choice(NAME, hp, "cell", CELLS),
        hidden_size=H.positive_int(NAME, hp, "hidden_size"),
        num_layers=H.positive_int(NAME, hp, "num_layers"),
        bidirectional=H.boolean(NAME, hp, "bidirectional"),
        reg=reg,
        prefix="rnn",
    )
    return keras.Model(inputs, frontend.head(x, reg), name=NAME)


def emission_rule(hp: dict) -> str:
    return "frames" if hp["subsampling"] == 1 else f"ceil(frames / {hp['subsampling']})"


FAMILY = Family(NAME, "stacked (Bi)LSTM / (Bi)GRU", build, emission_rule)
