"""Moving the two hands between the feature axis and the batch axis, so that one stack of layers
runs on each hand's features with shared weights (SplashNet's split-and-share encoder), or
splitting the features into one tensor per hand for stacks with their own weights (its un-shared
fine-tuning variant)."""

from __future__ import annotations

import keras
from keras import ops

from emgtf.models.layers.base import PER_FRAME, Reach, register


@register
class FoldBands(keras.layers.Layer):
    """``(B, F, bands * f)`` -> ``(B * bands, F, f)``: each band's half of the features becomes its
    own batch element (band-major features in, element ``b * bands + band`` out)."""

    def __init__(self, bands: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.bands = int(bands)

    def call(self, inputs):
        shape = ops.shape(inputs)
        width = inputs.shape[-1] // self.bands
        x = ops.reshape(inputs, (shape[0], shape[1], self.bands, width))
        x = ops.transpose(x, (0, 2, 1, 3))
        return ops.reshape(x, (-1, shape[1], width))

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] * self.bands
        return (batch, input_shape[1], input_shape[2] // self.bands)

    def temporal_reach(self) -> Reach:
        """Moves the hands between the feature and batch axes, frame by frame."""
        return PER_FRAME

    def get_config(self):
        return {**super().get_config(), "bands": self.bands}


@register
class UnfoldBands(keras.layers.Layer):
    """``(B * bands, F, f)`` -> ``(B, F, bands * f)``: the inverse of ``FoldBands``."""

    def __init__(self, bands: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.bands = int(bands)

    def call(self, inputs):
        shape = ops.shape(inputs)
        width = inputs.shape[-1]
        x = ops.reshape(inputs, (-1, self.bands, shape[1], width))
        x = ops.transpose(x, (0, 2, 1, 3))
        return ops.reshape(x, (-1, shape[1], self.bands * width))

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] // self.bands
        return (batch, input_shape[1], input_shape[2] * self.bands)

    def temporal_reach(self) -> Reach:
        """Moves the hands between the batch and feature axes, frame by frame."""
        return PER_FRAME

    def get_config(self):
        return {**super().get_config(), "bands": self.bands}


@register
class SplitBands(keras.layers.Layer):
    """``(B, F, bands * f)`` -> a list of ``bands`` tensors ``(B, F, f)``, band-major: each hand's
    half of the features, for per-hand layers joined again by concatenation."""

    def __init__(self, bands: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.bands = int(bands)

    def call(self, inputs):
        return ops.split(inputs, self.bands, axis=-1)

    def compute_output_shape(self, input_shape):
        return [(input_shape[0], input_shape[1], input_shape[2] // self.bands)] * self.bands

    def temporal_reach(self) -> Reach:
        """Splits each frame by hand."""
        return PER_FRAME

    def get_config(self):
        return {**super().get_config(), "bands": self.bands}
