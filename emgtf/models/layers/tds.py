"""The time-depth separable (TDS) blocks of Meta's baseline (Hannun et al., 2019)."""

from __future__ import annotations

import keras
from keras import ops

from emgtf.models.layers.base import (
    NORM_EPSILON,
    PER_FRAME,
    Reach,
    nonnegative,
    register,
    serialize_regularizer,
    time_length,
)


@register
class TDSConvBlock(keras.layers.Layer):
    """Time-depth separable convolution block (Hannun et al. 2019), as in Meta's baseline.

    Input ``(batch, frames, channels * width)``; output ``(batch, frames - kernel_width + 1,
    channels * width)``. The features are viewed as ``channels x width``; a convolution over time
    (``kernel_width`` frames, no padding) mixes the channels at each width position with shared
    weights; ReLU; residual connection to the input cropped to the last output frames; LayerNorm.
    Optional BatchNorm after the convolution and dropout on the residual branch.
    """

    def __init__(
        self,
        channels,
        kernel_width,
        dropout=0.0,
        batch_norm=False,
        kernel_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.kernel_width = int(kernel_width)
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed
        self.conv = keras.layers.Conv2D(
            self.channels,
            (self.kernel_width, 1),
            padding="valid",
            kernel_regularizer=self.kernel_regularizer,
            name="conv",
        )
        self.norm = (
            keras.layers.BatchNormalization(momentum=0.9, epsilon=NORM_EPSILON, name="batch_norm")
            if self.batch_norm
            else None
        )
        self.drop = keras.layers.Dropout(self.dropout, seed=seed) if self.dropout > 0 else None
        self.layer_norm = keras.layers.LayerNormalization(epsilon=NORM_EPSILON, name="layer_norm")

    def build(self, input_shape):
        num_features = input_shape[-1]
        if num_features % self.channels:
            raise ValueError(
                f"{self.channels} channels do not divide the {num_features} input features"
            )
        self.width = num_features // self.channels
        self.conv.build((None, None, self.width, self.channels))
        if self.norm is not None:
            self.norm.build((None, None, self.width, self.channels))
        self.layer_norm.build((None, None, num_features))

    def call(self, inputs, training=None):
        batch = ops.shape(inputs)[0]
        num_features = self.channels * self.width
        x = ops.reshape(inputs, (batch, -1, self.channels, self.width))
        if keras.backend.backend() == "tensorflow":
            x = ops.transpose(x, (0, 1, 3, 2))  # channels last for Conv2D over (time, width)
            x = self.conv(x)
        else:
            x = self._conv_1d(x)
        if self.norm is not None:
            x = self.norm(x, training=training)
        x = ops.relu(x)
        x = ops.reshape(ops.transpose(x, (0, 1, 3, 2)), (batch, -1, num_features))
        if self.drop is not None:
            x = self.drop(x, training=training)
        x = x + inputs[:, self.kernel_width - 1 :]
        return self.layer_norm(x)

    def _conv_1d(self, x):
        """(batch, frames, channels, width) -> (batch, frames - kernel_width + 1, width, channels):
        the Conv2D's sums as a 1-D convolution of the batch x width sequences, with its weights.

        XLA on CPU (JAX) runs a Conv2D with a (kernel_width, 1) kernel 5-10x slower than this,
        its gradient most; TensorFlow's oneDNN kernels are a little faster with the Conv2D.
        """
        shape = ops.shape(x)
        batch, frames = shape[0], shape[1]
        x = ops.reshape(ops.transpose(x, (0, 3, 1, 2)), (-1, frames, self.channels))
        kernel = ops.cast(self.conv.kernel[:, 0], x.dtype)  # (kernel_width, in, out)
        x = ops.conv(x, kernel, padding="valid") + ops.cast(self.conv.bias, x.dtype)
        return ops.transpose(ops.reshape(x, (batch, self.width, -1, self.channels)), (0, 2, 1, 3))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], time_length(input_shape[1], self.kernel_width - 1), input_shape[2])

    def compute_output_length(self, lengths):
        return nonnegative(lengths - (self.kernel_width - 1))

    def temporal_reach(self) -> Reach:
        """An unpadded window: ``kernel_width - 1`` frames dropped (the emission rule's)."""
        return Reach(window=self.kernel_width - 1)

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "kernel_width": self.kernel_width,
            "dropout": self.dropout,
            "batch_norm": self.batch_norm,
            "kernel_regularizer": serialize_regularizer(self.kernel_regularizer),
            "seed": self.seed,
        }


@register
class TDSFullyConnectedBlock(keras.layers.Layer):
    """The fully connected half of a TDS block.

    Input and output ``(batch, frames, features)``: Linear, ReLU, Linear, residual connection,
    LayerNorm. Optional BatchNorm before the ReLU and dropout on the residual branch.
    """

    def __init__(self, dropout=0.0, batch_norm=False, kernel_regularizer=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed
        self.norm = (
            keras.layers.BatchNormalization(momentum=0.9, epsilon=NORM_EPSILON, name="batch_norm")
            if self.batch_norm
            else None
        )
        self.drop = keras.layers.Dropout(self.dropout, seed=seed) if self.dropout > 0 else None
        self.layer_norm = keras.layers.LayerNormalization(epsilon=NORM_EPSILON, name="layer_norm")

    def build(self, input_shape):
        num_features = input_shape[-1]
        self.dense_1 = keras.layers.Dense(
            num_features, kernel_regularizer=self.kernel_regularizer, name="dense_1"
        )
        self.dense_2 = keras.layers.Dense(
            num_features, kernel_regularizer=self.kernel_regularizer, name="dense_2"
        )
        self.dense_1.build(input_shape)
        self.dense_2.build(input_shape)
        if self.norm is not None:
            self.norm.build(input_shape)
        self.layer_norm.build(input_shape)

    def call(self, inputs, training=None):
        x = self.dense_1(inputs)
        if self.norm is not None:
            x = self.norm(x, training=training)
        x = self.dense_2(ops.relu(x))
        if self.drop is not None:
            x = self.drop(x, training=training)
        return self.layer_norm(x + inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def temporal_reach(self) -> Reach:
        """Each frame alone."""
        return PER_FRAME

    def get_config(self):
        return {
            **super().get_config(),
            "dropout": self.dropout,
            "batch_norm": self.batch_norm,
            "kernel_regularizer": serialize_regularizer(self.kernel_regularizer),
            "seed": self.seed,
        }
