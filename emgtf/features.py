"""Spectrogram features as Keras layers, computed on the accelerator inside the model.

The raw EMG window goes into the model; the features are its first layers:

    LogSpectrogram -> [SpecAugment] -> [TemporalCropResize] -> SpectrogramNorm -> ...

``SpecAugment`` and ``TemporalCropResize`` are identity at inference. All layers use ``keras.ops``
and ``keras.random`` only, so they run unchanged under the TensorFlow, JAX and PyTorch backends.

Shapes use B = batch, T = samples, F = spectrogram frames, C = frequency bins (n_fft // 2 + 1).
Only ``LogSpectrogram`` changes the time length; like every such layer in emgtf it has
``compute_output_length(lengths)``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from emgtf.errors import EmgtfError

__all__ = [
    "LogSpectrogram",
    "SpecAugment",
    "SpectrogramNorm",
    "TemporalCropResize",
    "frames_for_samples",
]

# Added to the power before the log, so that silent (zero-padded) stretches give a finite -6.
POWER_FLOOR = 1e-6


def _check_int(owner: str, key: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise EmgtfError(f"{owner}: {key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _static_channels(owner: str, shape, first: int, last: int | None = None) -> tuple[int, ...]:
    """The static dims shape[first:last]; the layers reshape with them, so they must be known."""
    dims = tuple(shape[first:last])
    if any(d is None for d in dims):
        raise EmgtfError(
            f"{owner}: channel dimensions must be known, got input shape {tuple(shape)}"
        )
    return dims


def frames_for_samples(num_samples, n_fft: int = 64, hop_length: int = 16):
    """Number of spectrogram frames of ``num_samples`` samples: max(0, 1 + (n - n_fft) // hop).

    ``num_samples`` is a python int (returns an int), a numpy array or numpy integer (returns
    numpy, same dtype) or a backend tensor (returns a tensor, via ``keras.ops``). Fewer than
    ``n_fft`` samples give 0 frames.
    """
    if isinstance(num_samples, bool):
        raise EmgtfError(f"frames_for_samples: num_samples must be integers, got {num_samples!r}")
    if isinstance(num_samples, int):
        return max(0, 1 + (num_samples - n_fft) // hop_length)
    if isinstance(num_samples, (np.ndarray, np.generic)):
        if not np.issubdtype(num_samples.dtype, np.integer):
            raise EmgtfError(
                f"frames_for_samples: num_samples must be integers, got dtype {num_samples.dtype}"
            )
        frames = np.maximum(0, 1 + (num_samples - n_fft) // hop_length)
        return frames.astype(num_samples.dtype)
    n = ops.convert_to_tensor(num_samples)
    frames = 1 + ops.floor_divide(n - n_fft, hop_length)
    return ops.maximum(frames, ops.zeros_like(frames))


def _periodic_hann(n: int) -> np.ndarray:
    # Periodic (DFT-even) Hann, as torch.hann_window and scipy's fftbins=True give.
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


@keras.saving.register_keras_serializable(package="emgtf")
class LogSpectrogram(keras.layers.Layer):
    """log10 power spectrogram of each channel, as in emg2qwerty's reference recipe.

    Frames of ``n_fft`` samples every ``hop_length`` samples (no centring, no padding), periodic
    Hann window, power spectrum divided by the window's energy (sum of squared window values),
    then ``log10(power + 1e-6)``.

    Input shape: ``(B, T, 2, 16)`` (any static channel dims after time work; T may be None).
    Output shape: ``(B, F, 2, 16, n_fft // 2 + 1)`` with ``F = max(0, 1 + (T - n_fft) // hop)``;
    inputs shorter than ``n_fft`` give 0 frames.

    Computed in float32 whatever the dtype policy (the layer's default dtype is float32): raw EMG
    and a 1e-6 power floor are not representable in float16/bfloat16.
    """

    def __init__(self, n_fft: int = 64, hop_length: int = 16, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.n_fft = _check_int("LogSpectrogram", "n_fft", n_fft, 2)
        self.hop_length = _check_int("LogSpectrogram", "hop_length", hop_length, 1)
        self.num_bins = self.n_fft // 2 + 1
        window = _periodic_hann(self.n_fft)
        # Folding 1/sqrt(energy) into the window divides the power by the energy.
        self._window = (window / np.sqrt(np.sum(window**2))).astype("float32")

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise EmgtfError(
                "LogSpectrogram: input must be (batch, time, channels...), "
                f"got {tuple(input_shape)}"
            )
        _static_channels("LogSpectrogram", input_shape, 2)
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        channel_shape = _static_channels("LogSpectrogram", x.shape, 2)
        num_channels = math.prod(channel_shape)
        shape = ops.shape(x)
        batch, time = shape[0], shape[1]
        frames = frames_for_samples(time, self.n_fft, self.hop_length)
        x = ops.reshape(x, (batch, time, num_channels))
        # One gather frames every channel at once; 0 frames give an empty index (no error).
        starts = ops.arange(frames, dtype="int32") * self.hop_length
        index = ops.expand_dims(starts, 1) + ops.arange(self.n_fft, dtype="int32")[None, :]
        x = ops.take(x, index, axis=1)  # (B, F, n_fft, channels)
        x = ops.transpose(x, (0, 1, 3, 2)) * self._window
        # An FFT rather than a DFT matmul: GPU matmuls may run in TF32 (TensorFlow's and JAX's
        # default on Ampere and later), whose 10-bit mantissa costs ~1e-3 on the log scale.
        real, imag = ops.rfft(x)
        power = ops.log10(real * real + imag * imag + POWER_FLOOR)
        power = ops.reshape(power, (batch, frames, *channel_shape, self.num_bins))
        return ops.cast(power, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        time = input_shape[1]
        frames = None
        if time is not None:
            frames = frames_for_samples(int(time), self.n_fft, self.hop_length)
        return (input_shape[0], frames, *input_shape[2:], self.num_bins)

    def compute_output_length(self, lengths):
        """Frames of inputs of ``lengths`` samples (int, numpy or tensor; same kind returned)."""
        return frames_for_samples(lengths, self.n_fft, self.hop_length)

    def get_config(self):
        config = super().get_config()
        config.update({"n_fft": self.n_fft, "hop_length": self.hop_length})
        return config


def _uniform_int(shape, high, seed):
    """Integers uniform in [0, high] (inclusive); ``high`` broadcasts against ``shape``."""
    u = keras.random.uniform(shape, seed=seed)
    # u < 1, so floor(u * (high + 1)) <= high.
    return ops.cast(ops.floor(u * (ops.cast(high, "float32") + 1.0)), "int32")


@keras.saving.register_keras_serializable(package="emgtf")
class SpecAugment(keras.layers.Layer):
    """SpecAugment time and frequency masking, drawn independently per example and channel.

    Input and output shape: ``(B, F, 2, 16, C)`` (any static channel dims between F and C).
    Identity unless called with ``training=True``.

    Conventions (all integers drawn uniformly, bounds inclusive):

    - Per example, a number of time masks ``n ~ U{0..n_time_masks}``, shared by its channels.
      For each channel (2 x 16 = 32 independent draws per example) and each of the ``n`` masks:
      a width ``w ~ U{0..time_mask_param}`` frames (at most F) and a start ``s ~ U{0..F - w}``;
      frames ``s <= t < s + w`` of that channel, all bins, become ``mask_value``. Masks may
      overlap, so a channel loses at most ``n_time_masks * time_mask_param`` frames.
    - Likewise ``U{0..n_freq_masks}`` frequency masks of widths ``U{0..freq_mask_param}`` bins,
      the same bins of a channel masked in every frame.

    The reference (torchaudio masking) draws real-valued widths in [0, param); integer widths
    in [0, param] are the discrete equivalent. With zero-padded batches the masks are placed
    within the full padded length.
    """

    def __init__(
        self,
        n_time_masks: int = 3,
        time_mask_param: int = 25,
        n_freq_masks: int = 2,
        freq_mask_param: int = 4,
        mask_value: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_time_masks = _check_int("SpecAugment", "n_time_masks", n_time_masks, 0)
        self.time_mask_param = _check_int("SpecAugment", "time_mask_param", time_mask_param, 0)
        self.n_freq_masks = _check_int("SpecAugment", "n_freq_masks", n_freq_masks, 0)
        self.freq_mask_param = _check_int("SpecAugment", "freq_mask_param", freq_mask_param, 0)
        self.mask_value = float(mask_value)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if len(input_shape) < 4:
            raise EmgtfError(
                "SpecAugment: input must be (batch, frames, channels..., freq), "
                f"got {tuple(input_shape)}"
            )
        _static_channels("SpecAugment", input_shape, 2)
        self.built = True

    def _mask(self, draw_shape, size, positions, num_masks, max_width):
        """OR of up to ``num_masks`` intervals of ``positions`` (draws shaped like draw_shape)."""
        count = _uniform_int((draw_shape[0],), num_masks, self.seed_generator)
        count = ops.reshape(count, (-1,) + (1,) * (len(draw_shape) - 1))
        mask = None
        # A python loop over the (few) possible masks, never over the batch.
        for k in range(num_masks):
            width = ops.minimum(_uniform_int(draw_shape, max_width, self.seed_generator), size)
            start = _uniform_int(draw_shape, size - width, self.seed_generator)
            width = ops.where(count > k, width, 0)
            interval = ops.logical_and(
                positions >= ops.expand_dims(start, -1),
                positions < ops.expand_dims(start + width, -1),
            )
            mask = interval if mask is None else ops.logical_or(mask, interval)
        return mask  # draw_shape + (size,)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        channel_shape = _static_channels("SpecAugment", inputs.shape, 2, -1)
        num_bins = inputs.shape[-1]
        shape = ops.shape(inputs)
        batch, frames = shape[0], shape[1]
        draw_shape = (batch, *channel_shape)
        mask = None
        if self.n_time_masks and self.time_mask_param:
            time_mask = self._mask(
                draw_shape, frames, ops.arange(frames, dtype="int32"),
                self.n_time_masks, self.time_mask_param,
            )  # (B, *channels, F)
            time_mask = ops.moveaxis(time_mask, -1, 1)[..., None]  # (B, F, *channels, 1)
            mask = time_mask
        if self.n_freq_masks and self.freq_mask_param:
            freq_mask = self._mask(
                draw_shape, num_bins, ops.arange(num_bins, dtype="int32"),
                self.n_freq_masks, self.freq_mask_param,
            )  # (B, *channels, C)
            freq_mask = ops.expand_dims(freq_mask, 1)  # (B, 1, *channels, C)
            mask = freq_mask if mask is None else ops.logical_or(mask, freq_mask)
        if mask is None:
            return inputs
        return ops.where(mask, ops.cast(self.mask_value, inputs.dtype), inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_time_masks": self.n_time_masks,
                "time_mask_param": self.time_mask_param,
                "n_freq_masks": self.n_freq_masks,
                "freq_mask_param": self.freq_mask_param,
                "mask_value": self.mask_value,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="emgtf")
class TemporalCropResize(keras.layers.Layer):
    """Removes a random run of frames from each example and stretches the rest back linearly.

    Input and output shape: ``(B, F, ...)``; optional ``lengths`` ``(B,)`` (valid frames of each
    example). Identity unless called with ``training=True``.

    Per example: a crop ``c ~ U{0..min(max_crop, L // 2)}`` frames (never more than half the
    example) starting at ``s ~ U{0..L - c}``; the remaining ``K = L - c`` frames are resized to
    ``L`` by linear interpolation with aligned end points (output frame i reads position
    ``i * (K - 1) / (L - 1)`` of the remaining frames). All features of a frame move together.

    ``L`` is the example's ``lengths`` entry when given (frames beyond it pass through
    unchanged, so padding never leaks into the signal), else the full padded F. Without lengths
    the padding of a short example in a padded batch is part of what gets cropped and stretched.
    """

    def __init__(self, max_crop: int = 25, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.max_crop = _check_int("TemporalCropResize", "max_crop", max_crop, 0)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    # Keras matches these argument names to call()'s when lengths are passed.
    def build(self, inputs_shape, lengths_shape=None):
        if len(inputs_shape) < 2:
            raise EmgtfError(
                f"TemporalCropResize: input must be (batch, frames, ...), got {tuple(inputs_shape)}"
            )
        _static_channels("TemporalCropResize", inputs_shape, 2)
        self.built = True

    def call(self, inputs, lengths=None, training=None):
        if not training or self.max_crop == 0:
            return inputs
        feature_shape = _static_channels("TemporalCropResize", inputs.shape, 2)
        shape = ops.shape(inputs)
        batch, frames = shape[0], shape[1]
        full = ops.full((batch,), frames, dtype="int32")
        if lengths is None:
            valid = full
        else:
            valid = ops.minimum(ops.reshape(ops.cast(lengths, "int32"), (-1,)), full)
        crop = _uniform_int((batch,), ops.minimum(valid // 2, self.max_crop), self.seed_generator)
        kept = valid - crop
        start = _uniform_int((batch,), kept, self.seed_generator)

        i = ops.arange(frames, dtype="int32")[None, :]  # (1, F)
        valid_2d, kept_2d = valid[:, None], kept[:, None]
        # Multiply before dividing so that an uncropped example maps frame i exactly to i.
        position = ops.cast(i * (kept_2d - 1), "float32") / ops.cast(
            ops.maximum(valid_2d - 1, 1), "float32"
        )
        low = ops.cast(ops.floor(position), "int32")
        high = ops.minimum(low + 1, ops.maximum(kept_2d - 1, 0))
        frac = position - ops.cast(low, "float32")

        def source(kept_index):  # index among the kept frames -> input frame
            return kept_index + ops.where(kept_index >= start[:, None], crop[:, None], 0)

        inside = i < valid_2d
        low = ops.where(inside, source(low), i)
        high = ops.where(inside, source(high), i)
        frac = ops.where(inside, frac, 0.0)

        # Flattening batch and time makes both reads one gather each.
        x = ops.reshape(inputs, (-1, math.prod(feature_shape)))
        offset = ops.arange(batch, dtype="int32")[:, None] * frames
        x_low = ops.take(x, ops.reshape(low + offset, (-1,)), axis=0)
        x_high = ops.take(x, ops.reshape(high + offset, (-1,)), axis=0)
        frac = ops.cast(ops.reshape(frac, (-1, 1)), x.dtype)
        out = x_low + frac * (x_high - x_low)
        return ops.reshape(out, shape)

    def compute_output_shape(self, inputs_shape, lengths_shape=None):
        return tuple(inputs_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"max_crop": self.max_crop, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="emgtf")
class SpectrogramNorm(keras.layers.Layer):
    """Batch normalisation per electrode channel, statistics over batch, time and frequency.

    Input and output shape: ``(B, F, 2, 16, C)``; the 2 x 16 = 32 channels (any static channel
    dims between F and C) each get their own mean, variance, gamma and beta, like a
    BatchNorm2d over 32 channels in the reference: 64 trainable parameters (gamma, beta) and 64
    non-trainable ones (moving mean and variance) for 32 channels.

    Training uses the batch's statistics and moves the running ones by ``1 - momentum``
    towards them; inference uses the running ones. ``momentum`` and ``epsilon`` default to
    PyTorch's BatchNorm values (its momentum 0.1 is 0.9 here); the running variance is the
    biased batch variance, as in Keras. Zero-padded frames of a padded batch count in the
    statistics. Computed in float32 under any dtype policy.
    """

    def __init__(self, momentum: float = 0.9, epsilon: float = 1e-5, **kwargs):
        # Statistics and their variables stay float32 under a mixed policy (no autocasting).
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        if not 0.0 <= self.momentum <= 1.0:
            raise EmgtfError(f"SpectrogramNorm: momentum must be in [0, 1], got {momentum!r}")
        if self.epsilon <= 0.0:
            raise EmgtfError(f"SpectrogramNorm: epsilon must be > 0, got {epsilon!r}")

    def build(self, input_shape):
        if len(input_shape) < 4:
            raise EmgtfError(
                "SpectrogramNorm: input must be (batch, frames, channels..., freq), "
                f"got {tuple(input_shape)}"
            )
        channels = math.prod(_static_channels("SpectrogramNorm", input_shape, 2, -1))
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(
            shape=(channels,), initializer="zeros", trainable=False, name="moving_mean"
        )
        self.moving_variance = self.add_weight(
            shape=(channels,), initializer="ones", trainable=False, name="moving_variance"
        )
        self.built = True

    def call(self, inputs, training=None):
        channels = math.prod(_static_channels("SpectrogramNorm", inputs.shape, 2, -1))
        shape = ops.shape(inputs)
        x = ops.reshape(ops.cast(inputs, "float32"), (shape[0], shape[1], channels, shape[-1]))
        if training:
            # Reducing the contiguous frequency axis first is ~3x faster on CPU than one
            # reduction over (batch, time, freq), as keras.layers.BatchNormalization does.
            mean = ops.mean(ops.mean(x, axis=-1), axis=(0, 1))
            centred = x - mean[:, None]
            variance = ops.mean(ops.mean(ops.square(centred), axis=-1), axis=(0, 1))
            self.moving_mean.assign(
                self.momentum * self.moving_mean + (1.0 - self.momentum) * mean
            )
            self.moving_variance.assign(
                self.momentum * self.moving_variance + (1.0 - self.momentum) * variance
            )
        else:
            mean, variance = self.moving_mean, self.moving_variance
        scale = self.gamma * ops.rsqrt(variance + self.epsilon)
        x = x * scale[:, None] + (self.beta - mean * scale)[:, None]
        return ops.cast(ops.reshape(x, shape), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "epsilon": self.epsilon})
        return config
