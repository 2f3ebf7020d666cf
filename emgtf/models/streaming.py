"""The incremental step of a model that streams exactly: ``(state, samples) -> (next_state,
log_probs)``, each spectrogram frame and each layer's frame computed once.

The state is one float32 vector holding what the next emissions need and nothing more: the last
``n_fft - hop_length`` raw samples (the overlap of the next spectrogram frame) and, for each
time-depth separable convolution block, the last ``kernel_width - 1`` frames of its input (its
receptive field). A step takes any whole number ``k`` of hops of new samples and returns ``k``
outputs, so its cost is that of ``k`` frames, whatever the receptive field.

Shapes (no batch dimension): ``state`` float32 ``[state_size]``, ``samples`` float32
``[k * hop_length, 2, 16]`` (raw EMG, left band first) -> ``next_state`` float32
``[state_size]``, ``log_probs`` float32 ``[k, 99]``.

From a zero state, the first ``warmup_emissions`` outputs of a stream read that zero state and
are discarded; output ``m`` after them is emission ``m - warmup_emissions`` of the whole
recording, exactly (to float rounding). Samples after the last whole hop give no emission (the
emission rule), so a stream's emissions are those of its whole hops.

Only models whose every layer works frame by frame or is an unpadded TDS convolution block, in a
single chain, have such a step: the TDS baseline. Others are refused with one line. The step is
keras.ops only; :mod:`emgtf.export.stream_step` traces it into an export's ``stream_step``
signature and :class:`emgtf.inference.streaming.StreamingDecoder` runs it on a live stream.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.errors import EmgtfError

__all__ = ["StateLayout", "incremental_step", "state_layout"]

# Layers the step applies to the new frames alone: each computes a frame from that frame
# (augmentation layers are the identity at inference).
_PER_FRAME = {
    "SpectrogramNorm", "SpecAugment", "TemporalCropResize", "RotationInvariantMLP", "Dense",
    "Activation", "Dropout", "BatchNormalization", "LayerNormalization", "TDSFullyConnectedBlock",
    "ReLU", "Identity",
}


@dataclass(frozen=True)
class StateLayout:
    """Where each part of the state lies: ``parts`` is ``(name, shape)`` in order, ``name``
    "samples" for the raw sample overlap, else the TDS block whose input frames it keeps."""

    hop_length: int
    parts: tuple
    warmup_emissions: int

    @property
    def state_size(self) -> int:
        return sum(math.prod(shape) for _, shape in self.parts)

    @property
    def span_samples(self) -> int:
        """The signal the state stands for: the raw overlap and a hop per kept block frame."""
        overlap = self.parts[0][1][0]
        return overlap + self.hop_length * sum(shape[0] for _, shape in self.parts[1:])

    def initial_state(self) -> np.ndarray:
        return np.zeros(self.state_size, np.float32)


def chain(model):
    """The model's layers after its input, checked to form one chain (each layer reads the
    previous one's output), or a one-line error."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    previous = model.inputs[0]
    for layer in layers:
        if layer.input is not previous:
            raise refuse(model, f"layer '{layer.name}' does not read the output of the layer before it")
        previous = layer.output
    return layers


def refuse(model, why: str) -> EmgtfError:
    return EmgtfError(
        f"model '{model.name}' has no streaming step: {why}; only the TDS baseline (tds_conv_ctc) "
        "streams this way"
    )


def state_layout(model) -> StateLayout:
    """The state layout of ``model``'s incremental step; raises EmgtfError (one line) for a model
    that has none."""
    from emgtf.models.emission import EmissionRule

    layers = chain(model)
    rule = EmissionRule.from_model(model)
    spectrogram = layers[0]
    if type(spectrogram).__name__ != "LogSpectrogram":
        raise refuse(model, "its first layer is not the log spectrogram")
    n_fft, hop = spectrogram.n_fft, spectrogram.hop_length
    if n_fft % hop:
        raise refuse(model, f"its n_fft ({n_fft}) is not a multiple of its hop length ({hop})")
    overlap = n_fft - hop
    parts = [("samples", (overlap, NUM_BANDS, NUM_CHANNELS))]
    lost = 0
    for layer in layers[1:]:
        kind = type(layer).__name__
        if kind == "TDSConvBlock":
            parts.append((layer.name, (layer.kernel_width - 1, int(layer.input.shape[-1]))))
            lost += layer.kernel_width - 1
        elif kind == "Reshape" and layer.target_shape[0] == -1:
            continue  # the dense front's flattening of each frame
        elif kind not in _PER_FRAME:
            raise refuse(model, f"layer '{layer.name}' ({kind}) is not a per-frame layer or a TDS block")
    if (lost, rule.subsampling) != (rule.lost_frames, 1):
        raise refuse(model, f"its emission rule ({rule.describe()}) is not its TDS blocks' frames")
    return StateLayout(hop, tuple(parts), overlap // hop + lost)


def incremental_step(model, layout: StateLayout, state, samples, raw_scope: str | None = None):
    """One step (module docstring): returns ``(next_state, log_probs)``. ``raw_scope`` names the
    ops on the raw signal (an int8 export keeps them float)."""
    layers = chain(model)
    sizes = [math.prod(shape) for _, shape in layout.parts]
    parts = ops.split(state, [int(i) for i in np.cumsum(sizes)[:-1]])
    overlap_shape = layout.parts[0][1]
    with keras.name_scope(raw_scope) if raw_scope else contextlib.nullcontext():
        signal = ops.concatenate([ops.reshape(parts[0], overlap_shape), samples], axis=0)
        new_parts = [ops.reshape(signal[-overlap_shape[0]:], [-1])]
    x = layers[0](signal[None])  # (1, k, 2, 16, bins)
    cached = iter(zip(parts[1:], layout.parts[1:]))
    for layer in layers[1:]:
        if type(layer).__name__ == "TDSConvBlock":
            part, (_, shape) = next(cached)
            x = ops.concatenate([ops.cast(ops.reshape(part, shape), x.dtype)[None], x], axis=1)
            new_parts.append(ops.cast(ops.reshape(x[0, -shape[0]:], [-1]), "float32"))
        x = layer(x, training=False)
    return ops.concatenate(new_parts, axis=0), ops.cast(x[0], "float32")
