"""1-D convolution layers: the residual block of the TCN / ConvResNet families and the strided
subsampling in front of the recurrent and transformer families."""

from __future__ import annotations

import math

import keras
from keras import ops

from emgtf.models.layers.base import (
    NORM_EPSILON,
    MaskedInputBuild,
    Reach,
    nonnegative,
    register,
    serialize_regularizer,
)


@register
class ConvBlock1D(keras.layers.Layer):
    """Residual 1-D convolution block over time, for the TCN and ConvResNet families.

    Input and output ``(batch, frames, filters)``. ``convs`` convolutions of ``kernel_size``
    frames (dilated by ``dilation``; ``causal`` pads on the past side only, otherwise both sides),
    each followed by optional BatchNorm and ReLU, dropout on the branch, then the residual sum.
    With ``relu_after_sum`` (ResNet style) the last ReLU comes after the sum instead.
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        dilation=1,
        convs=1,
        causal=False,
        relu_after_sum=False,
        dropout=0.0,
        batch_norm=False,
        kernel_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.dilation = int(dilation)
        self.num_convs = int(convs)
        self.causal = bool(causal)
        self.relu_after_sum = bool(relu_after_sum)
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed
        self.convs = [
            keras.layers.Conv1D(
                self.filters,
                self.kernel_size,
                dilation_rate=self.dilation,
                padding="causal" if self.causal else "same",
                kernel_regularizer=self.kernel_regularizer,
                name=f"conv_{i + 1}",
            )
            for i in range(self.num_convs)
        ]
        self.norms = (
            [
                keras.layers.BatchNormalization(
                    momentum=0.9, epsilon=NORM_EPSILON, name=f"batch_norm_{i + 1}"
                )
                for i in range(self.num_convs)
            ]
            if self.batch_norm
            else []
        )
        self.drop = keras.layers.Dropout(self.dropout, seed=seed) if self.dropout > 0 else None

    def build(self, input_shape):
        if input_shape[-1] != self.filters:
            raise ValueError(
                f"input has {input_shape[-1]} features, the residual needs {self.filters}"
            )
        for conv in self.convs:
            conv.build(input_shape)
        for norm in self.norms:
            norm.build(input_shape)

    def call(self, inputs, training=None):
        x = inputs
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if self.norms:
                x = self.norms[i](x, training=training)
            if not (self.relu_after_sum and i == self.num_convs - 1):
                x = ops.relu(x)
        if self.drop is not None:
            x = self.drop(x, training=training)
        x = x + inputs
        return ops.relu(x) if self.relu_after_sum else x

    def compute_output_shape(self, input_shape):
        return input_shape

    def temporal_reach(self) -> Reach:
        """Each convolution's ``(kernel_size - 1) * dilation`` frames of zero padding: all before
        (causal), else the smaller half before (Keras "same")."""
        span = (self.kernel_size - 1) * self.dilation
        before = span if self.causal else span // 2
        return Reach(past=before * self.num_convs, future=(span - before) * self.num_convs)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "dilation": self.dilation,
            "convs": self.num_convs,
            "causal": self.causal,
            "relu_after_sum": self.relu_after_sum,
            "dropout": self.dropout,
            "batch_norm": self.batch_norm,
            "kernel_regularizer": serialize_regularizer(self.kernel_regularizer),
            "seed": self.seed,
        }


@register
class ConvSubsampling(MaskedInputBuild, keras.layers.Layer):
    """Strided convolutions that shorten the frame sequence by ``factor`` (1, 2, 4, 8, ...).

    Input ``(batch, frames, features)`` and an optional ``padding_mask`` ``(batch, frames)``;
    output ``(batch, ceil(frames / factor), filters)``: one convolution (``kernel_size``, stride
    2, optional BatchNorm, ReLU) per halving. Output frame i of a stage reads input frames
    ``2i - (kernel_size - 1) // 2 ...``: fixed padding rather than Keras' "same", whose
    alignment flips with the parity of the length. ``causal``: frames ``2i - kernel_size + 1
    ... 2i`` instead, none later than the output's own. Padded frames are zeroed before each
    stage, so an example reads the same values in a padded batch as alone. Attention cost falls
    with the square of the factor.
    """

    def __init__(
        self,
        factor=2,
        filters=256,
        kernel_size=3,
        batch_norm=False,
        kernel_regularizer=None,
        causal=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.causal = bool(causal)
        factor = int(factor)
        if factor < 1 or factor & (factor - 1):
            raise ValueError(f"factor must be a power of 2, got {factor}")
        self.factor = factor
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.batch_norm = bool(batch_norm)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.stages = int(math.log2(factor))
        self.convs = [
            keras.layers.Conv1D(
                self.filters,
                self.kernel_size,
                strides=2,
                padding="valid",
                kernel_regularizer=self.kernel_regularizer,
                name=f"conv_{i + 1}",
            )
            for i in range(self.stages)
        ]
        self.norms = (
            [
                keras.layers.BatchNormalization(
                    momentum=0.9, epsilon=NORM_EPSILON, name=f"batch_norm_{i + 1}"
                )
                for i in range(self.stages)
            ]
            if self.batch_norm
            else []
        )

    def build(self, input_shape):
        self._built_input_shape = tuple(input_shape)
        features = input_shape[-1]
        for i, conv in enumerate(self.convs):
            conv.build((None, None, features))
            features = self.filters
            if self.norms:
                self.norms[i].build((None, None, features))

    @property
    def padding(self) -> tuple[int, int]:
        """Input frames of zero padding (before, after) of each stage's convolution."""
        before = self.kernel_size - 1 if self.causal else (self.kernel_size - 1) // 2
        return before, self.kernel_size - 1 - before

    def call(self, inputs, padding_mask=None, training=None):
        x = inputs
        before, after = self.padding
        for i, conv in enumerate(self.convs):
            if padding_mask is not None:
                x = x * ops.cast(padding_mask, x.dtype)[:, :, None]
                padding_mask = padding_mask[:, ::2]
            x = conv(ops.pad(x, ((0, 0), (before, after), (0, 0))))
            if self.norms:
                x = self.norms[i](x, training=training)
            x = ops.relu(x)
        return x

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        for _ in range(self.stages):
            length = None if length is None else (length + 1) // 2
        features = self.filters if self.stages else input_shape[-1]
        return (input_shape[0], length, features)

    def compute_output_length(self, lengths):
        lengths = nonnegative(lengths)
        for _ in range(self.stages):
            lengths = (lengths + 1) // 2
        return lengths

    def temporal_reach(self) -> Reach:
        """Stage i pads frames ``2**i`` input frames wide; output every ``2**stages``-th frame."""
        before, after = self.padding
        scale = sum(2**stage for stage in range(self.stages))
        return Reach(past=before * scale, future=after * scale, subsampling=2**self.stages)

    def get_config(self):
        return {
            **super().get_config(),
            "factor": self.factor,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "batch_norm": self.batch_norm,
            "kernel_regularizer": serialize_regularizer(self.kernel_regularizer),
            "causal": self.causal,
        }
