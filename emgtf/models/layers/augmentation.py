"""Train-time augmentation of the spectrogram, identity at inference: SpecAugment masks and the
temporal crop-and-resize.

Shapes use B = batch, F = spectrogram frames, C = frequency bins.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from emgtf.errors import EmgtfError
from emgtf.models.layers.base import PER_FRAME, Reach, check_int, register, static_channels


def _uniform_int(shape, high, seed):
    """Integers uniform in [0, high] (inclusive); ``high`` broadcasts against ``shape``."""
    u = keras.random.uniform(shape, seed=seed)
    # u < 1, so floor(u * (high + 1)) <= high.
    return ops.cast(ops.floor(u * (ops.cast(high, "float32") + 1.0)), "int32")


@register
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
        self.n_time_masks = check_int("SpecAugment", "n_time_masks", n_time_masks, 0)
        self.time_mask_param = check_int("SpecAugment", "time_mask_param", time_mask_param, 0)
        self.n_freq_masks = check_int("SpecAugment", "n_freq_masks", n_freq_masks, 0)
        self.freq_mask_param = check_int("SpecAugment", "freq_mask_param", freq_mask_param, 0)
        self.mask_value = float(mask_value)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if len(input_shape) < 4:
            raise EmgtfError(
                "SpecAugment: input must be (batch, frames, channels..., freq), "
                f"got {tuple(input_shape)}"
            )
        static_channels("SpecAugment", input_shape, 2)
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
        channel_shape = static_channels("SpecAugment", inputs.shape, 2, -1)
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

    def temporal_reach(self) -> Reach:
        """The identity at inference."""
        return PER_FRAME

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


@register
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
        self.max_crop = check_int("TemporalCropResize", "max_crop", max_crop, 0)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    # Keras matches these argument names to call()'s when lengths are passed.
    def build(self, inputs_shape, lengths_shape=None):
        if len(inputs_shape) < 2:
            raise EmgtfError(
                f"TemporalCropResize: input must be (batch, frames, ...), got {tuple(inputs_shape)}"
            )
        static_channels("TemporalCropResize", inputs_shape, 2)
        self.built = True

    def call(self, inputs, lengths=None, training=None):
        if not training or self.max_crop == 0:
            return inputs
        feature_shape = static_channels("TemporalCropResize", inputs.shape, 2)
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

    def temporal_reach(self) -> Reach:
        """The identity at inference."""
        return PER_FRAME

    def get_config(self):
        config = super().get_config()
        config.update({"max_crop": self.max_crop, "seed": self.seed})
        return config
