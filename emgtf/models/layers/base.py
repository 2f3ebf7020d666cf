"""What every emgtf layer shares: registration for ``.keras`` files, PyTorch's norm epsilon, and
the length and shape checks.

Protocol: every layer that changes the number of frames has ``compute_output_length(lengths)``,
taking and returning a python int, a numpy array or a tensor, so that
``emgtf.models.emission_lengths`` can follow a window's length through any model. Layers on side
branches (the padding mask) deliberately do not have it.

Every emgtf layer also declares how far in time one of its output frames reads,
``temporal_reach() -> Reach`` (at inference: augmentation is the identity then), so that
``emgtf.models.streaming.model_reach`` can tell, from the layers alone, whether a model streams,
and how much overlap chunks of a whole session need to give the one-shot result.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Reach:
    """What one output frame reads beyond its own input frame, in input frames (at inference).

    ``past`` / ``future``: frames before / after it that zero padding stands in for at the edges of
    an input (padded convolutions); ``window``: frames of an unpadded window after it, which the
    layer drops from its output (the emission rule counts them; a TDS block's step keeps them);
    ``subsampling``: output frames per input frame is ``1 / subsampling``; ``unbounded_past``: it
    reads the whole past (a recurrent state, causal attention); ``unbounded_future``: the whole
    input, or its absolute position in it (``why`` says how, ``fix`` what streams instead);
    ``running_statistics``: statistics of every frame since the input's start (a rolling norm:
    exact only through its incremental step); ``raw_samples``: it filters the raw signal before the
    spectrogram, unpadded, as a window and stride of input samples (a low-pass filter, a lower
    sample rate): the emission rule counts that window and stride in its ``n_fft`` and
    ``hop_length`` (input samples), so a chunk starting on an emission's stride reads what the
    whole input does and nothing is to be added in frames; the incremental step runs such layers
    on its new samples and raw overlap, before the spectrogram. ``Reach()`` is a per-frame layer.

    For a whole model (``emgtf.models.streaming.model_reach``) the frames are spectrogram
    frames and ``window`` is the emission rule's ``lost_frames``.
    """

    past: int = 0
    future: int = 0
    window: int = 0
    subsampling: int = 1
    unbounded_past: bool = False
    unbounded_future: bool = False
    running_statistics: bool = False
    raw_samples: bool = False
    why: str = ""
    fix: str = ""

    @property
    def per_frame(self) -> bool:
        return self == Reach()

    @property
    def finite(self) -> bool:
        """Every output frame reads a bounded span of frames around it."""
        return not (self.unbounded_past or self.unbounded_future)

    def then(self, after: "Reach") -> "Reach":
        """This reach followed by ``after`` (a layer reading this one's output frames)."""
        sub = self.subsampling
        return Reach(
            self.past + after.past * sub, self.future + after.future * sub,
            self.window + after.window * sub, sub * after.subsampling,
            self.unbounded_past or after.unbounded_past, self.unbounded_future or after.unbounded_future,
            self.running_statistics or after.running_statistics, self.raw_samples or after.raw_samples,
            self.why or after.why, self.fix or after.fix,
        )

    def join(self, other: "Reach") -> "Reach":
        """The reach of two branches read together (a join of parallel paths): the wider."""
        return Reach(
            max(self.past, other.past), max(self.future, other.future), max(self.window, other.window),
            max(self.subsampling, other.subsampling),
            self.unbounded_past or other.unbounded_past, self.unbounded_future or other.unbounded_future,
            self.running_statistics or other.running_statistics, self.raw_samples or other.raw_samples,
            self.why or other.why, self.fix or other.fix,
        )

    def describe(self) -> str:
        if self.unbounded_future:
            return f"unbounded: {self.why}"
        if self.unbounded_past:
            return "unbounded past (recurrent), windowed"
        if self.past or self.future:
            return f"exact, {self.past} frames of past and {self.future} of future padding"
        if self.running_statistics:
            return "exact, running statistics from the stream's start"
        return "exact, no padding"


PER_FRAME = Reach()


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
