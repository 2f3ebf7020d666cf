"""Transformer layers: sinusoidal positions, the padding mask of a batch, and the encoder block."""

from __future__ import annotations

import math

import keras
from keras import ops

from emgtf.models.layers.base import MaskedInputBuild, NORM_EPSILON, Reach, register, serialize_regularizer
from emgtf.models.layers.spectrogram import frames_for_samples


@register
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Adds the sinusoidal position code of Vaswani et al. (2017), computed for any length.

    Input and output ``(batch, frames, features)``. No weights, so a model trained on 4 s windows
    runs on whole sessions.
    """

    def __init__(self, max_wavelength=10000.0, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = float(max_wavelength)

    def call(self, inputs):
        length = ops.shape(inputs)[1]
        dim = inputs.shape[-1]
        half = (dim + 1) // 2
        positions = ops.cast(ops.arange(length), "float32")[:, None]
        rates = ops.exp(
            ops.cast(ops.arange(half), "float32") * (-math.log(self.max_wavelength) / half)
        )
        angles = positions * rates[None, :]
        code = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)[:, :dim]
        return inputs + ops.cast(code, inputs.dtype)[None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def temporal_reach(self) -> Reach:
        return Reach(unbounded_future=True,
                     why="encodes absolute positions from the start of the input, so no emission "
                     "is final before the session ends", fix="stream the TDS baseline")

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


@register
class FramePaddingMask(keras.layers.Layer):
    """Which frames belong to the example rather than to the zero padding of a batch.

    Input raw EMG ``(batch, samples, bands, channels)``; output float ``(batch, frames //
    subsampling rounded up)``: 1 where the frame's spectrogram window (``n_fft`` samples every
    ``hop_length``) ends before the trailing all-zero samples, else 0; then every
    ``subsampling``-th frame, matching ``ConvSubsampling``. So an example of n samples gets
    exactly its emission length of ones. Only trailing zeros count as padding: an all-zero
    stretch inside a recording stays signal. A side branch: deliberately no
    ``compute_output_length``.
    """

    def __init__(self, n_fft=64, hop_length=16, subsampling=1, **kwargs):
        super().__init__(**kwargs)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.subsampling = int(subsampling)

    def call(self, inputs):
        active = ops.cast(ops.any(ops.not_equal(inputs, 0), axis=(2, 3)), "int32")
        # Signal at or after each sample: the reversed running sum.
        signal_ahead = ops.flip(ops.cumsum(ops.flip(active, axis=1), axis=1), axis=1) > 0
        # A python int wherever the backend knows the length: JAX traces need a static arange.
        frames = frames_for_samples(ops.shape(inputs)[1], self.n_fft, self.hop_length)
        last_sample = ops.arange(frames, dtype="int32") * self.hop_length + (self.n_fft - 1)
        mask = ops.take(ops.cast(signal_ahead, "float32"), last_sample, axis=1)
        return mask[:, :: self.subsampling]

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        if length is not None:
            length = max(1 + (length - self.n_fft) // self.hop_length, 0)
            length = -(-length // self.subsampling)
        return (input_shape[0], length)

    def temporal_reach(self) -> Reach:
        return Reach(unbounded_future=True,
                     why="masks by the length of the whole input, so no emission is final before "
                     "the session ends", fix="stream the TDS baseline")

    def get_config(self):
        return {
            **super().get_config(),
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "subsampling": self.subsampling,
        }


@register
class TransformerBlock(MaskedInputBuild, keras.layers.Layer):
    """Pre-LayerNorm transformer encoder block, optionally with a Conformer convolution module.

    Input ``(batch, frames, d_model)`` and an optional ``padding_mask`` ``(batch, frames)`` (1 =
    signal, 0 = padding, keys that are padding get no attention); output ``(batch, frames,
    d_model)``. Sub-blocks, each ``x + dropout(f(LayerNorm(x)))``: multi-head self-attention;
    when ``conv_kernel > 0`` a convolution module (pointwise conv + GLU, depthwise conv of
    ``conv_kernel`` frames, BatchNorm or LayerNorm, swish, pointwise conv); feed-forward
    (``ff_size``, GELU).
    """

    def __init__(
        self,
        num_heads=4,
        ff_size=1024,
        dropout=0.1,
        conv_kernel=0,
        batch_norm=False,
        kernel_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.ff_size = int(ff_size)
        self.dropout = float(dropout)
        self.conv_kernel = int(conv_kernel)
        self.batch_norm = bool(batch_norm)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed
        self.drop = keras.layers.Dropout(self.dropout, seed=seed) if self.dropout > 0 else None

    def _norm(self, name):
        return keras.layers.LayerNormalization(epsilon=NORM_EPSILON, name=name)

    def build(self, input_shape):
        self._built_input_shape = tuple(input_shape)
        d_model = input_shape[-1]
        if d_model % self.num_heads:
            raise ValueError(f"{self.num_heads} heads do not divide d_model {d_model}")
        reg = self.kernel_regularizer
        self.attention_norm = self._norm("attention_norm")
        self.attention = keras.layers.MultiHeadAttention(
            self.num_heads,
            d_model // self.num_heads,
            dropout=self.dropout,
            kernel_regularizer=reg,
            name="attention",
        )
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape, input_shape)
        if self.conv_kernel > 0:
            self.conv_norm = self._norm("conv_norm")
            self.conv_in = keras.layers.Dense(2 * d_model, kernel_regularizer=reg, name="conv_in")
            self.depthwise = keras.layers.DepthwiseConv1D(
                self.conv_kernel, padding="same", depthwise_regularizer=reg, name="depthwise"
            )
            self.depthwise_norm = (
                keras.layers.BatchNormalization(
                    momentum=0.9, epsilon=NORM_EPSILON, name="depthwise_batch_norm"
                )
                if self.batch_norm
                else self._norm("depthwise_norm")
            )
            self.conv_out = keras.layers.Dense(d_model, kernel_regularizer=reg, name="conv_out")
            self.conv_norm.build(input_shape)
            self.conv_in.build(input_shape)
            self.depthwise.build(input_shape)
            self.depthwise_norm.build(input_shape)
            self.conv_out.build(input_shape)
        self.ff_norm = self._norm("ff_norm")
        self.ff_in = keras.layers.Dense(self.ff_size, kernel_regularizer=reg, name="ff_in")
        self.ff_out = keras.layers.Dense(d_model, kernel_regularizer=reg, name="ff_out")
        self.ff_norm.build(input_shape)
        self.ff_in.build(input_shape)
        self.ff_out.build(tuple(input_shape[:-1]) + (self.ff_size,))

    def _residual(self, x, h, training):
        if self.drop is not None:
            h = self.drop(h, training=training)
        return x + h

    def call(self, inputs, padding_mask=None, training=None):
        x = inputs
        attention_mask = None
        if padding_mask is not None:
            # (batch, 1, keys): every query ignores padded keys.
            attention_mask = ops.expand_dims(ops.greater(padding_mask, 0.5), axis=1)
        h = self.attention_norm(x)
        h = self.attention(h, h, attention_mask=attention_mask, training=training)
        x = self._residual(x, h, training)
        if self.conv_kernel > 0:
            h = self.conv_in(self.conv_norm(x))
            value, gate = ops.split(h, 2, axis=-1)
            h = value * ops.sigmoid(gate)
            if padding_mask is not None:
                # Padding must not leak into real frames through the depthwise kernel.
                h = h * ops.cast(padding_mask, h.dtype)[:, :, None]
            h = self.depthwise(h)
            if self.batch_norm:
                h = self.depthwise_norm(h, training=training)
            else:
                h = self.depthwise_norm(h)
            h = self.conv_out(ops.silu(h))
            x = self._residual(x, h, training)
        h = self.ff_in(self.ff_norm(x))
        h = ops.gelu(h)
        if self.drop is not None:
            h = self.drop(h, training=training)
        h = self.ff_out(h)
        return self._residual(x, h, training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def temporal_reach(self) -> Reach:
        return Reach(unbounded_future=True,
                     why="attends over the whole input (full self-attention), so no emission is "
                     "final before the session ends", fix="stream the TDS baseline")

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "ff_size": self.ff_size,
            "dropout": self.dropout,
            "conv_kernel": self.conv_kernel,
            "batch_norm": self.batch_norm,
            "kernel_regularizer": serialize_regularizer(self.kernel_regularizer),
            "seed": self.seed,
        }
