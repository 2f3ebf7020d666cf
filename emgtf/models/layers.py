"""Keras layers shared by the model families.

Protocol (shared with :mod:`emgtf.features`): every layer that changes the number of frames has
``compute_output_length(lengths)``, taking and returning a python int, a numpy array or a tensor,
so that :func:`emgtf.models.emission_lengths` can follow a window's length through any model.
Layers on side branches (the padding mask) deliberately do not have it.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from emgtf.features import frames_for_samples

_register = keras.saving.register_keras_serializable(package="emgtf")

# PyTorch's LayerNorm / BatchNorm epsilon: keeps Meta's checkpoints portable.
_NORM_EPSILON = 1e-5


def nonnegative(lengths):
    """``max(lengths, 0)`` for python ints, numpy values and backend tensors alike."""
    if isinstance(lengths, (int, np.integer)) and not isinstance(lengths, bool):
        return type(lengths)(max(lengths, 0))
    if isinstance(lengths, np.ndarray):
        return np.maximum(lengths, 0)
    return ops.maximum(lengths, 0)


def _serialize(regularizer):
    return keras.regularizers.serialize(regularizer) if regularizer is not None else None


def _time_length(length, shrink):
    return None if length is None else max(length - shrink, 0)


@_register
class RotationInvariantMLP(keras.layers.Layer):
    """Per-band MLP pooled over small rotations of the electrode ring (Meta's front end).

    Input ``(batch, frames, bands, channels, bins)``; output ``(batch, frames, bands * f)`` with
    ``f = features[-1]``. For each band, the ``channels x bins`` features are rolled along the
    channel axis by each of ``offsets``; every roll goes through the same MLP (Linear + ReLU for
    each entry of ``features``) and the results are averaged (or max-pooled) over the rolls. The
    bands do not share weights: they are mirror images, not copies.
    """

    def __init__(
        self,
        features=(384,),
        offsets=(-1, 0, 1),
        pooling="mean",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pooling not in ("mean", "max"):
            raise ValueError(f"pooling must be 'mean' or 'max', got {pooling!r}")
        self.features = [int(f) for f in features]
        self.offsets = [int(o) for o in offsets]
        self.pooling = pooling
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        _, _, bands, channels, bins = input_shape
        self._bands, self._channels, self._bins = bands, channels, bins
        self.kernels, self.biases = [], []
        fan_in = channels * bins
        for i, fan_out in enumerate(self.features):
            # Glorot for each band's (fan_in, fan_out) matrix; Keras would otherwise count the
            # band axis as a receptive field and shrink the scale by the number of bands.
            init = keras.initializers.VarianceScaling(
                scale=float(bands), mode="fan_avg", distribution="uniform"
            )
            self.kernels.append(
                self.add_weight(
                    name=f"kernel_{i}",
                    shape=(bands, fan_in, fan_out),
                    initializer=init,
                    regularizer=self.kernel_regularizer,
                )
            )
            self.biases.append(
                self.add_weight(name=f"bias_{i}", shape=(bands, fan_out), initializer="zeros")
            )
            fan_in = fan_out

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        rolled = ops.stack([ops.roll(inputs, o, axis=3) for o in self.offsets], axis=3)
        # (batch, frames, band, roll, channel * bin), channel-major like Meta's flattening.
        x = ops.reshape(
            rolled, (batch, -1, self._bands, len(self.offsets), self._channels * self._bins)
        )
        for kernel, bias in zip(self.kernels, self.biases):
            x = ops.einsum("btnri,nio->btnro", x, kernel) + bias[:, None, :]
            x = ops.relu(x)
        x = ops.mean(x, axis=3) if self.pooling == "mean" else ops.max(x, axis=3)
        return ops.reshape(x, (batch, -1, self._bands * self.features[-1]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[2] * self.features[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "features": list(self.features),
            "offsets": list(self.offsets),
            "pooling": self.pooling,
            "kernel_regularizer": _serialize(self.kernel_regularizer),
        }


@_register
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
            keras.layers.BatchNormalization(momentum=0.9, epsilon=_NORM_EPSILON, name="batch_norm")
            if self.batch_norm
            else None
        )
        self.drop = keras.layers.Dropout(self.dropout, seed=seed) if self.dropout > 0 else None
        self.layer_norm = keras.layers.LayerNormalization(epsilon=_NORM_EPSILON, name="layer_norm")

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
        x = ops.transpose(x, (0, 1, 3, 2))  # channels last for Conv2D over (time, width)
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x, training=training)
        x = ops.relu(x)
        x = ops.reshape(ops.transpose(x, (0, 1, 3, 2)), (batch, -1, num_features))
        if self.drop is not None:
            x = self.drop(x, training=training)
        x = x + inputs[:, self.kernel_width - 1 :]
        return self.layer_norm(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], _time_length(input_shape[1], self.kernel_width - 1), input_shape[2])

    def compute_output_length(self, lengths):
        return nonnegative(lengths - (self.kernel_width - 1))

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "kernel_width": self.kernel_width,
            "dropout": self.dropout,
            "batch_norm": self.batch_norm,
            "kernel_regularizer": _serialize(self.kernel_regularizer),
            "seed": self.seed,
        }


@_register
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
            keras.layers.BatchNormalization(momentum=0.9, epsilon=_NORM_EPSILON, name="batch_norm")
            if self.batch_norm
            else None
        )
        self.drop = keras.layers.Dropout(self.dropout, seed=seed) if self.dropout > 0 else None
        self.layer_norm = keras.layers.LayerNormalization(epsilon=_NORM_EPSILON, name="layer_norm")

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

    def get_config(self):
        return {
            **super().get_config(),
            "dropout": self.dropout,
            "batch_norm": self.batch_norm,
            "kernel_regularizer": _serialize(self.kernel_regularizer),
            "seed": self.seed,
        }


@_register
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
                    momentum=0.9, epsilon=_NORM_EPSILON, name=f"batch_norm_{i + 1}"
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
            "kernel_regularizer": _serialize(self.kernel_regularizer),
            "seed": self.seed,
        }


@_register
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

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


@_register
class ConvSubsampling(keras.layers.Layer):
    """Strided convolutions that shorten the frame sequence by ``factor`` (1, 2, 4, 8, ...).

    Input ``(batch, frames, features)`` and an optional ``padding_mask`` ``(batch, frames)``;
    output ``(batch, ceil(frames / factor), filters)``: one convolution (``kernel_size``, stride
    2, optional BatchNorm, ReLU) per halving. Output frame i of a stage reads input frames
    ``2i - (kernel_size - 1) // 2 ...``: fixed padding rather than Keras' "same", whose
    alignment flips with the parity of the length. Padded frames are zeroed before each stage,
    so an example reads the same values in a padded batch as alone. Attention cost falls with
    the square of the factor.
    """

    def __init__(
        self,
        factor=2,
        filters=256,
        kernel_size=3,
        batch_norm=False,
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
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
                    momentum=0.9, epsilon=_NORM_EPSILON, name=f"batch_norm_{i + 1}"
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

    # Built from the frames' shape alone (see TransformerBlock).
    def get_build_config(self):
        return {"input_shape": self._built_input_shape}

    def build_from_config(self, config):
        if config:
            self.build(config["input_shape"])

    def call(self, inputs, padding_mask=None, training=None):
        x = inputs
        before = (self.kernel_size - 1) // 2
        after = self.kernel_size - 1 - before
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

    def get_config(self):
        return {
            **super().get_config(),
            "factor": self.factor,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "batch_norm": self.batch_norm,
            "kernel_regularizer": _serialize(self.kernel_regularizer),
        }


@_register
class FramePaddingMask(keras.layers.Layer):
    """Which frames belong to the example rather than to the zero padding of a batch.

    Input raw EMG ``(batch, samples, bands, channels)``; output float ``(batch, frames //
    subsampling rounded up)``: 1 where the frame's spectrogram window (``n_fft`` samples every
    ``hop_length``) ends before the trailing all-zero samples, else 0; then every
    ``subsampling``-th frame, matching :class:`ConvSubsampling`. So an example of n samples gets
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

    def get_config(self):
        return {
            **super().get_config(),
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "subsampling": self.subsampling,
        }


@_register
class TransformerBlock(keras.layers.Layer):
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
        return keras.layers.LayerNormalization(epsilon=_NORM_EPSILON, name=name)

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
                    momentum=0.9, epsilon=_NORM_EPSILON, name="depthwise_batch_norm"
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

    # Built from the frames' shape alone; Keras would otherwise record the mask's shape too and
    # call build() with both on reload.
    def get_build_config(self):
        return {"input_shape": self._built_input_shape}

    def build_from_config(self, config):
        if config:
            self.build(config["input_shape"])

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "ff_size": self.ff_size,
            "dropout": self.dropout,
            "conv_kernel": self.conv_kernel,
            "batch_norm": self.batch_norm,
            "kernel_regularizer": _serialize(self.kernel_regularizer),
            "seed": self.seed,
        }
