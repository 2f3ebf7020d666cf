"""The incremental step of a model that streams exactly: ``(state, samples) -> (next_state,
log_probs)``, each spectrogram frame and each layer's frame computed once.

The state is one float32 vector holding what the next emissions need and nothing more: the last
``n_fft - hop_length`` raw samples (the overlap of the next spectrogram frame; in input samples,
after any low-pass filter or downsampling before the spectrogram), for each
time-depth separable convolution block the last ``kernel_width - 1`` frames of its input (its
receptive field; one per hand where the hands are folded into the batch), and, for a model with
a ``RollingTimeNorm``, its running statistics and warm-up buffer
(``step``) with a count of the spectrogram frames before
the first one of the signal. A step takes any whole number ``k`` of hops of new samples, so its
cost is that of ``k`` frames, whatever the receptive field.

Shapes (no batch dimension): ``state`` float32 ``[state_size]``, ``samples`` float32
``[k * hop_length, 2, 16]`` (raw EMG, left band first) -> ``next_state`` float32
``[state_size]``, ``log_probs`` float32 ``[m, 99]``: ``m = k`` without a rolling norm; with one,
``m = 0`` while its warm-up (125 frames) is incomplete, then the held-back frames at once, then
``k``, and a last call with ``final=True`` (any ``k``, 0 included) releases what a stream shorter
than the warm-up holds.

From a zero state, the first ``warmup_emissions`` outputs of a stream read that zero state and
are discarded; output ``m`` after them is emission ``m - warmup_emissions`` of the whole
recording, exactly (to float rounding). Without a rolling norm that is ``(n_fft - hop) / hop``
spectrogram frames of the zero overlap and the TDS blocks' ``lost_frames``; a rolling norm never
sees those first spectrogram frames (they would enter its statistics), so only ``lost_frames``.
Samples after the last whole hop give no emission (the emission rule), so a stream's emissions
are those of its whole hops.

Only models whose every layer works frame by frame (the hands folded into the batch or split and
joined included), is an unpadded TDS convolution block, is one rolling norm before them or is an
unpadded filter of the raw samples before the spectrogram (``Reach.raw_samples``: the course
reports' low-pass and downsampling, run on the raw overlap and the new samples) have such a step: the TDS baseline and SplashNet (shared or un-shared hands). Others are refused with
one line. The step is keras.ops only; ``emgtf.export.stream_step`` traces it into an export's
``stream_step`` signature (fixed shapes: not for a rolling norm) and
``emgtf.inference.streaming.StreamingDecoder`` runs it on a live stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from keras import ops

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.errors import EmgtfError
from emgtf.models.layers.base import PER_FRAME, Reach

__all__ = ["Reach", "StateLayout", "incremental_step", "layer_reach", "model_reach", "state_layout"]

# The Keras built-ins' reach (emgtf's layers declare theirs: ``temporal_reach()``): class name ->
# Reach, or a function of the layer giving one (None: unknown).
_KERAS_REACH = {
    **dict.fromkeys(
        ("InputLayer", "Dense", "Activation", "Dropout", "BatchNormalization", "LayerNormalization",
         "ReLU", "Identity", "Add", "Concatenate", "Multiply", "Subtract", "Average", "Maximum",
         "Minimum", "GaussianNoise", "GaussianDropout"),
        PER_FRAME,
    ),
    # The dense front's flattening of each frame keeps the time axis; any other reshape mixes it.
    "Reshape": lambda layer: PER_FRAME if tuple(layer.target_shape)[:1] == (-1,) else None,
    **dict.fromkeys(("LSTM", "GRU", "SimpleRNN", "RNN"), lambda layer: Reach(
        unbounded_future=True, why="runs backwards in time, so it cannot stream")
        if getattr(layer, "go_backwards", False) else Reach(unbounded_past=True)),
    "Bidirectional": Reach(
        unbounded_future=True,
        why="is a bidirectional RNN, so every emission depends on the rest of the session and none "
        "can be streamed",
        fix="stream a unidirectional rnn (model.bidirectional=false) or the TDS baseline"),
    "MultiHeadAttention": Reach(
        unbounded_future=True,
        why="attends over the whole input (full self-attention), so no emission is final before the "
        "session ends", fix="stream the TDS baseline"),
}
_WHOLE_SESSION = "decode whole sessions with python -m emgtf.transcribe"
# The state part counting the spectrogram frames a rolling norm must not see.
_FRAMES = "frames"


@dataclass(frozen=True)
class StateLayout:
    """Where each part of the state lies: ``parts`` is ``(name, shape)`` in order, ``name``
    "samples" for the raw sample overlap, "frames" for the count of spectrogram frames read from
    the zero overlap at the stream's start, a RollingTimeNorm's name for its state, else the TDS
    block whose input frames it keeps. ``lost_frames``: the TDS blocks' frames along the path to
    the output; ``held_frames``: the rolling norm's warm-up (0 without one)."""

    hop_length: int
    parts: tuple
    warmup_emissions: int
    lost_frames: int = 0
    held_frames: int = 0

    @property
    def state_size(self) -> int:
        return sum(math.prod(shape) for _, shape in self.parts)

    @property
    def overlap_samples(self) -> int:
        return self.parts[0][1][0]

    @property
    def span_samples(self) -> int:
        """The signal the state stands for: the raw overlap, a hop per frame the TDS blocks keep
        and per frame the warm-up buffer holds (a rolling norm's statistics summarise the rest)."""
        return self.overlap_samples + self.hop_length * (self.lost_frames + self.held_frames)

    def initial_state(self) -> np.ndarray:
        return np.zeros(self.state_size, np.float32)


@dataclass(frozen=True)
class _Node:
    """One layer of the model's graph: the ids of the tensors it reads and writes."""

    layer: object
    inputs: tuple
    outputs: tuple

    @property
    def kind(self) -> str:
        return type(self.layer).__name__


def graph(model) -> list:
    """The model's layers after its input as ``_Node`` s in topological order, or a one-line
    error for a layer used more than once; the first reads the model's input."""
    nodes = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if len(layer._inbound_nodes) != 1:
            raise refuse(model, f"layer '{layer.name}' is called {len(layer._inbound_nodes)} times")
        node = layer._inbound_nodes[0]
        nodes.append(_Node(layer, tuple(id(t) for t in node.input_tensors),
                           tuple(id(t) for t in node.output_tensors)))
    if not nodes or nodes[0].inputs != (id(model.inputs[0]),):
        raise refuse(model, "its first layer does not read its input")
    return nodes


def layer_reach(layer) -> Reach | None:
    """What one output frame of ``layer`` reads in time (``Reach``): its own
    ``temporal_reach()``, else the Keras built-ins' table; None for a layer that declares none."""
    declared = getattr(layer, "temporal_reach", None)
    if declared is not None:
        return declared()
    known = _KERAS_REACH.get(type(layer).__name__)
    return known(layer) if callable(known) else known


def _walk(model) -> tuple[Reach, list, list]:
    """The reach of ``model``'s output along its graph (the wider branch where branches join), the
    layers whose reach is unbounded in the future, and those that declare none."""
    reaches = {id(t): PER_FRAME for t in model.inputs}
    unbounded, unknown = [], []
    for layer in model.layers:  # topological order
        node = layer._inbound_nodes[0]
        own = layer_reach(layer)
        if own is None:
            unknown.append(layer)
            own = Reach(unbounded_future=True)
        elif own.unbounded_future:
            unbounded.append((layer, own))
        before = PER_FRAME
        for tensor in node.input_tensors:
            before = before.join(reaches.get(id(tensor), PER_FRAME))
        after = own if type(layer).__name__ == "InputLayer" else before.then(own)
        for tensor in node.output_tensors:
            reaches[id(tensor)] = after
    return reaches[id(model.outputs[0])], unbounded, unknown


def model_reach(model, *, streaming: bool = True) -> Reach:
    """The ``Reach`` of a Keras model's emissions in spectrogram frames, from its layers'
    declarations (the frames of its unpadded windows in ``window``: the emission rule's
    ``lost_frames``).

    ``streaming``: raise EmgtfError (one line: which layer, why, what to use) for a model that
    cannot stream (an emission that reads the whole input, or a layer that declares no reach);
    else return such a reach with ``unbounded_future`` set (chunked whole-session inference runs
    those whole)."""
    reach, unbounded, unknown = _walk(model)
    if not streaming:
        return reach
    if unbounded:  # the last says most plainly why: attention rather than the positions before it
        layer, own = unbounded[-1]
        fix = f", or {own.fix}" if own.fix else ""
        raise EmgtfError(f"model '{model.name}': layer '{layer.name}' ({type(layer).__name__}) "
                         f"{own.why}; {_WHOLE_SESSION}{fix}")
    if unknown:
        layer = unknown[0]
        raise EmgtfError(f"model '{model.name}': layer '{layer.name}' ({type(layer).__name__}): cannot "
                         f"tell how far in time this layer reads, so the model cannot stream; {_WHOLE_SESSION}")
    return reach


def refuse(model, why: str) -> EmgtfError:
    return EmgtfError(
        f"model '{model.name}' has no streaming step: {why}; only the TDS baseline (tds_conv_ctc) "
        "and SplashNet stream this way"
    )


def state_layout(model) -> StateLayout:
    """The state layout of ``model``'s incremental step; raises EmgtfError (one line) for a model
    that has none."""
    from emgtf.models.emission import EmissionRule

    nodes = graph(model)
    rule = EmissionRule.from_model(model)
    first = _spectrogram_index(model, nodes)
    # n_fft and hop in input samples (more than the spectrogram's own after a downsampling).
    n_fft, hop = rule.n_fft, rule.hop_length
    if n_fft % hop:
        raise refuse(model, f"its n_fft ({n_fft} input samples) is not a multiple of its hop "
                     f"length ({hop})")
    overlap = n_fft - hop
    parts = [("samples", (overlap, NUM_BANDS, NUM_CHANNELS))]
    # Per tensor: (frames the TDS blocks before it lost, examples per stream in its batch axis).
    paths = {nodes[first].outputs[0]: (0, 1)}
    norm = None
    for node in nodes[first + 1:]:
        layer, kind = node.layer, node.kind
        if any(i not in paths for i in node.inputs):
            raise refuse(model, f"layer '{layer.name}' reads the raw input")
        if len({paths[i] for i in node.inputs}) != 1:
            raise refuse(model, f"layer '{layer.name}' joins branches that lost different frames")
        lost, fold = paths[node.inputs[0]]
        reach = layer_reach(layer)
        if reach is not None and reach == Reach(window=reach.window) and reach.window:
            # An unpadded window (a TDS block): its last ``window`` input frames are the state.
            shape = (reach.window, int(layer.input.shape[-1]))
            parts.append((layer.name, shape if fold == 1 else (fold, *shape)))
            lost += shape[0]
        elif reach is not None and reach == Reach(running_statistics=True):
            if norm is not None or lost or fold != 1:
                raise refuse(model, f"its rolling norm '{layer.name}' is not the only one, before "
                             "every TDS block and the hands' folding")
            norm = layer
            parts += [(_FRAMES, (1,)), (layer.name, (layer.state_size(layer.input.shape[2:]),))]
        elif kind == "FoldBands":
            fold *= layer.bands
        elif kind == "UnfoldBands":
            fold //= layer.bands
        elif reach is None or not reach.per_frame:
            raise refuse(model, f"layer '{layer.name}' ({kind}) is not a per-frame layer or a TDS block")
        for output in node.outputs:
            paths[output] = (lost, fold)
    lost = paths[id(model.outputs[0])][0]
    if (lost, rule.subsampling) != (rule.lost_frames, 1):
        raise refuse(model, f"its emission rule ({rule.describe()}) is not its TDS blocks' frames")
    if norm is None:
        return StateLayout(hop, tuple(parts), overlap // hop + lost, lost_frames=lost)
    return StateLayout(hop, tuple(parts), lost, lost_frames=lost, held_frames=norm.warmup)


def _spectrogram_index(model, nodes) -> int:
    """Where the log spectrogram is among ``nodes``: after a chain of unpadded sample filters
    (layers whose reach is ``raw_samples``: low-pass, downsampling), whose outputs a chunk starting
    on a hop computes exactly."""
    filters = [bool(getattr(layer_reach(node.layer), "raw_samples", False)) for node in nodes]
    first = filters.index(False) if False in filters else len(nodes)
    for before, after in zip(nodes[:first], nodes[1 : first + 1]):
        if after.inputs != before.outputs:
            raise refuse(model, f"layer '{before.layer.name}' does not feed the spectrogram")
    if first == len(nodes) or nodes[first].kind != "LogSpectrogram":
        node = nodes[min(first, len(nodes) - 1)]
        raise refuse(model, f"layer '{node.layer.name}' ({node.kind}) comes before the log spectrogram")
    return first


def incremental_step(model, layout: StateLayout, state, samples, final: bool = False):
    """One step (module docstring): returns ``(next_state, log_probs)``. ``final`` (a python
    bool): the stream ends with these samples."""
    nodes = graph(model)
    shapes = dict(layout.parts)
    sizes = [math.prod(shape) for _, shape in layout.parts]
    parts = dict(zip(shapes, ops.split(state, [int(i) for i in np.cumsum(sizes)[:-1]])))
    overlap = layout.overlap_samples
    signal = ops.concatenate([ops.reshape(parts["samples"], shapes["samples"]), samples], axis=0)
    new_parts = {"samples": ops.reshape(signal[-overlap:], [-1])}
    first = _spectrogram_index(model, nodes)
    x = signal[None]
    for node in nodes[:first + 1]:
        x = node.layer(x)
    values = {nodes[first].outputs[0]: x}  # (1, k, 2, 16, bins)
    for node in nodes[first + 1:]:
        layer, inputs = node.layer, [values[i] for i in node.inputs]
        reach = layer_reach(layer) if layer.name in shapes else None  # a layer with a state part
        if reach is not None and reach.running_statistics:
            outputs, new_parts[_FRAMES], new_parts[layer.name] = _norm_step(
                layer, layout, parts[_FRAMES], parts[layer.name], inputs[0], final
            )
        else:
            if reach is not None:  # an unpadded window: its cached input frames first
                keep = shapes[layer.name][-2:]
                cached = ops.cast(ops.reshape(parts[layer.name], (-1, *keep)), inputs[0].dtype)
                x = ops.concatenate([cached, inputs[0]], axis=1)
                new_parts[layer.name] = ops.cast(ops.reshape(x[:, -keep[0]:], [-1]), "float32")
                inputs = [x]
            if reach is not None and layout.held_frames:
                outputs = _windowed(layer, reach.window + 1, inputs[0])
            else:
                outputs = layer(inputs[0] if len(inputs) == 1 else inputs, training=False)
        for output, value in zip(node.outputs, outputs if isinstance(outputs, (list, tuple)) else [outputs]):
            values[output] = value
    next_state = ops.concatenate([new_parts[name] for name, _ in layout.parts], axis=0)
    return next_state, ops.cast(values[id(model.outputs[0])][0], "float32")


def _norm_step(layer, layout: StateLayout, frames_part, norm_part, x, final: bool):
    """The rolling norm's step on the spectrogram frames ``x`` (1, k, ...) of the signal: the
    first frames of a stream, read from the zero overlap, are dropped (counted in
    ``frames_part``). Returns (released frames (1, m, ...), next frames part, next norm part)."""
    skip = layout.overlap_samples // layout.hop_length
    before = ops.cast(frames_part[0], "int32")
    k = ops.shape(x)[1]
    drop = ops.clip(skip - before, 0, k)
    seen = ops.reshape(ops.cast(ops.minimum(before + k, skip), "float32"), (1,))
    norm_part, released = layer.step(norm_part, x[0, drop:], final=final)
    return released[None], seen, norm_part


def _windowed(block, width: int, x):
    """A layer of an unpadded ``width``-frame window (a TDS convolution block) on ``x`` (its
    cached frames and the new ones), where a rolling
    norm's warm-up may leave no new frame: the block is skipped then, as an empty convolution
    output is refused by Keras (eagerly) and mis-shaped by oneDNN's kernel (traced: 3 frames of
    output for 3 of input and a 4-frame kernel)."""
    frames = x.shape[1]
    empty = (ops.shape(x)[0], 0, x.shape[2])
    if frames is not None:  # known: eagerly, or a trace without a rolling norm
        return ops.zeros(empty, x.dtype) if frames < width else block(x, training=False)
    return ops.cond(ops.shape(x)[1] < width, lambda: ops.zeros(empty, x.dtype),
                    lambda: block(x, training=False))
