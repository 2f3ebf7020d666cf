"""``transformer``: pre-LayerNorm self-attention encoder over frames.

Optional strided-convolution subsampling (2x or 4x fewer frames: attention cost falls with the
square), sinusoidal positions (no length limit, so 4 s training windows and longer test inputs
use the same code), a padding mask derived from the zero padding of a batch, and optionally a
Conformer convolution module in every block (``conv_kernel`` > 0).

Attention memory grows with the square of the number of frames: transcribe long sessions in
windows rather than at once.
"""

from __future__ import annotations

import keras

from emgtf.models import frontend
from emgtf.models import hyperparameters as H
from emgtf.models.family import Family
from emgtf.models.layers import (
    ConvSubsampling,
    FramePaddingMask,
    SinusoidalPositionEncoding,
    TransformerBlock,
)
from emgtf.models.regularizers import Regularization

NAME = "transformer"
SUBSAMPLING = (1, 2, 4)


def subsampled(inputs, x, hp: dict, reg: Regularization, family: str, d_model: int, *,
               use_mask: bool, causal: bool = False):
    """The front's frames ``x`` as ``(batch, frames / subsampling, d_model)`` (strided
    convolutions, or a Dense layer when ``subsampling`` is 1) and the padding mask of those
    frames (None unless ``use_mask``), both from raw EMG ``inputs``."""
    subsampling = hp["subsampling"]
    if subsampling not in SUBSAMPLING:
        raise H.fail(family, "subsampling", f"expected 1, 2 or 4, got {subsampling!r}")
    frame_mask = mask = None
    if use_mask:
        n_fft, hop = frontend.sample_geometry(hp)
        frame_mask = FramePaddingMask(n_fft=n_fft, hop_length=hop, name="frame_mask")(inputs)
        mask = frame_mask
    if subsampling > 1:
        subsample = ConvSubsampling(
            subsampling,
            d_model,
            batch_norm=reg.batch_norm,
            kernel_regularizer=reg.kernel_regularizer(),
            causal=causal,
            name="subsampling",
        )
        x = subsample(x) if frame_mask is None else subsample(x, padding_mask=frame_mask)
        if use_mask:
            mask = FramePaddingMask(
                n_fft=n_fft,
                hop_length=hop,
                subsampling=subsampling,
                name="padding_mask",
            )(inputs)
    else:
        x = reg.dense(d_model, name=f"{family}_input")(x)
    return x, mask


def build(hp: dict) -> keras.Model:
    reg = Regularization.from_hyperparameters(hp)
    d_model = H.positive_int(NAME, hp, "d_model")
    num_heads = H.positive_int(NAME, hp, "num_heads")
    if d_model % num_heads:
        raise H.fail(NAME, "num_heads", f"{num_heads} does not divide d_model {d_model}")
    ff_size = H.positive_int(NAME, hp, "ff_size")
    conv_kernel = H.positive_int(NAME, hp, "conv_kernel", minimum=0)
    use_mask = H.boolean(NAME, hp, "padding_mask")

    inputs = frontend.emg_input()
    x = frontend.spectrogram(inputs, hp)
    x = frontend.features(x, hp, reg, NAME)
    x, mask = subsampled(inputs, x, hp, reg, NAME, d_model, use_mask=use_mask)
    x = SinusoidalPositionEncoding(name="position_encoding")(x)
    x = reg.apply_dropout(x, name="input_dropout")
    for i in range(H.positive_int(NAME, hp, "num_layers")):
        block = TransformerBlock(
            num_heads=num_heads,
            ff_size=ff_size,
            dropout=reg.dropout,
            conv_kernel=conv_kernel,
            batch_norm=reg.batch_norm,
            kernel_regularizer=reg.kernel_regularizer(),
            name=f"transformer_block_{i + 1}",
        )
        x = block(x) if mask is None else block(x, padding_mask=mask)
    x = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    return keras.Model(inputs, frontend.head(x, reg), name=NAME)


def emission_rule(hp: dict) -> str:
    if hp["subsampling"] == 1:
        return "frames"
    return f"ceil(frames / {hp['subsampling']})"


FAMILY = Family(NAME, "pre-LN transformer (+ conv subsampling)", build, emission_rule)
