"""``conformer``: Conformer encoder (Gulati et al. 2020) over the frames, rotary positions.

The front (spectrogram, rotation-invariant MLP), optional strided-convolution subsampling as in
``transformer``, then ``num_layers`` Conformer blocks (FFN/2, self-attention with rotary
positions, depthwise convolution module, FFN/2, LayerNorm). Sized like the baseline (about 5 M
parameters). ``causal=true``: causal attention, causal depthwise and subsampling convolutions,
no padding mask (padding after a frame cannot reach it), so every emission depends on the input
up to its own frame only and the model can stream (an encoder of the newer online papers).
Attention memory grows with the square of the number of frames: transcribe long sessions in
windows rather than at once.
"""

from __future__ import annotations

import keras

from emgtf.models import frontend, transformer
from emgtf.models import hyperparameters as H
from emgtf.models.family import Family
from emgtf.models.layers import ConformerBlock
from emgtf.models.regularizers import Regularization

NAME = "conformer"


def build(hp: dict) -> keras.Model:
    reg = Regularization.from_hyperparameters(hp)
    d_model = H.positive_int(NAME, hp, "d_model")
    num_heads = H.positive_int(NAME, hp, "num_heads")
    if d_model % (2 * num_heads):
        raise H.fail(NAME, "num_heads", f"{num_heads} heads do not split d_model {d_model} into "
                     "even head sizes (rotary positions rotate pairs)")
    ff_size = H.positive_int(NAME, hp, "ff_size")
    conv_kernel = H.positive_int(NAME, hp, "conv_kernel")
    causal = H.boolean(NAME, hp, "causal")
    use_mask = H.boolean(NAME, hp, "padding_mask") and not causal

    inputs = frontend.emg_input()
    x = frontend.spectrogram(inputs, hp)
    x = frontend.features(x, hp, reg, NAME)
    x, mask = transformer.subsampled(inputs, x, hp, reg, NAME, d_model, use_mask=use_mask,
                                     causal=causal)
    x = reg.apply_dropout(x, name="input_dropout")
    for i in range(H.positive_int(NAME, hp, "num_layers")):
        block = ConformerBlock(
            num_heads=num_heads,
            ff_size=ff_size,
            conv_kernel=conv_kernel,
            dropout=reg.dropout,
            causal=causal,
            batch_norm=reg.batch_norm,
            kernel_regularizer=reg.kernel_regularizer(),
            name=f"conformer_block_{i + 1}",
        )
        x = block(x) if mask is None else block(x, padding_mask=mask)
    return keras.Model(inputs, frontend.head(x, reg), name=NAME)


emission_rule = transformer.emission_rule


FAMILY = Family(NAME, "Conformer (rotary positions; causal option)", build, emission_rule)
