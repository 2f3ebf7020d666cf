"""What every emgtf layer shares: registration for ``.keras`` files, PyTorch's norm epsilon, and
the length and shape checks.

Protocol: every layer that changes the number of frames has ``compute_output_length(lengths)``,
taking and returning a python int, a numpy array or a tensor, so that
:func:`emgtf.models.emission_lengths` can follow a window's length through any model. Layers on side
branches (the padding mask) deliberately do not have it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from emgtf.errors import EmgtfError

# Registered as "emgtf>ClassName": checkpoints name layers by class, not by module, so layers can
# move between modules without breaking saved models.
register = keras.saving.register_keras_serializable(package="emgtf")

# PyTorch's LayerNorm / BatchNorm epsilon: keeps Meta's checkpoints portable.
NORM_EPSILON = 1e-5


class MaskedInputBuild:
    """For layers called as ``layer(frames, padding_mask=mask)``: built from the frames' shape
    alone. Keras would otherwise record the mask's shape too and call ``build()`` with both on
    reload. The layer's ``build`` stores ``self._built_input_shape``."""

    def get_build_config(self):
        return {"input_shape": self._built_input_shape}

    def build_from_config(self, config):
        if config:
            self.build(config["input_shape"])


def nonnegative(lengths):
    """``max(lengths, 0)`` for python ints, numpy values and backend tensors alike."""
    if isinstance(lengths, (int, np.integer)) and not isinstance(lengths, bool):
        return type(lengths)(max(lengths, 0))
    if isinstance(lengths, np.ndarray):
        return np.maximum(lengths, 0)
    return ops.maximum(lengths, 0)


def serialize_regularizer(regularizer):
    return keras.regularizers.serialize(regularizer) if regularizer is not None else None


def time_length(length, shrink):
    return None if length is None else max(length - shrink, 0)


def check_int(owner: str, key: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise EmgtfError(f"{owner}: {key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def static_channels(owner: str, shape, first: int, last: int | None = None) -> tuple[int, ...]:
    """The static dims shape[first:last]; the layers reshape with them, so they must be known."""
    dims = tuple(shape[first:last])
    if any(d is None for d in dims):
        raise EmgtfError(
            f"{owner}: channel dimensions must be known, got input shape {tuple(shape)}"
        )
    return dims
