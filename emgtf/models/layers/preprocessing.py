"""Preprocessing of the raw EMG and of the spectrogram that the emg2qwerty course reports tried:
min-max normalisation, a low-pass smoothing filter, a lower sample rate, a fixed electrode subset
and a random crop in time. They are model layers, so training, validation, test, streaming and
export all apply them the same way.

Shapes use B = batch, T = samples, F = spectrogram frames, C = frequency bins.

The sample-domain layers (``LowPassFilter``, ``Downsample``) filter without padding: an
output sample reads only real input samples, so ``T`` input samples give
``max(0, (T - window) // stride + 1)`` outputs (``window`` input samples read per output, every
``stride`` samples). A chain of them before the spectrogram is again such a window and stride in
the input's samples, so ``EmissionRule`` keeps its closed form (its ``n_fft``
and ``hop_length`` are then in input samples at 2 kHz) and a chunk that starts at a multiple of
the stride computes exactly the samples of the whole recording.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from emgtf import NUM_CHANNELS, SAMPLE_RATE
from emgtf.errors import EmgtfError
from emgtf.models.layers.base import PER_FRAME, Reach, check_int, nonnegative, register, static_channels

# Added to the range of a constant channel (a dropped or silent electrode), so it maps to 0.
MINMAX_EPSILON = 1e-6


def lowpass_taps(cutoff_hz: float, sample_rate: float, num_taps: int) -> np.ndarray:
    """Linear-phase FIR low-pass: a Hamming-windowed sinc of ``num_taps`` taps, gain 1 at 0 Hz
    (scipy.signal.firwin's design), cutoff ``cutoff_hz`` (-6 dB)."""
    from scipy.signal import firwin

    return firwin(num_taps, cutoff_hz, fs=sample_rate, window="hamming").astype("float32")


def strided_length(lengths, window: int, stride: int):
    """``max(0, (lengths - window) // stride + 1)`` for ints, numpy arrays and tensors alike."""
    if isinstance(lengths, (int, np.integer)) and not isinstance(lengths, bool):
        return type(lengths)(max(0, (int(lengths) - window) // stride + 1))
    if isinstance(lengths, np.ndarray):
        return np.maximum(0, (lengths - window) // stride + 1).astype(lengths.dtype)
    return nonnegative(ops.floor_divide(lengths - window, stride) + 1)


class _SampleFilter(keras.layers.Layer):
    """A FIR filter along time of every channel, unpadded, keeping every ``stride``-th output.

    ``taps`` None: no filter, the last sample of each block of ``stride`` (window ``stride``).
    """

    def _setup(self, taps, stride: int):
        self._taps = None if taps is None else np.asarray(taps, "float32")
        self.window = stride if taps is None else len(self._taps)
        self.stride = stride

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise EmgtfError(f"{type(self).__name__}: input must be (batch, time, channels...), "
                             f"got {tuple(input_shape)}")
        static_channels(type(self).__name__, input_shape, 2)
        self.built = True

    def call(self, inputs):
        channel_shape = static_channels(type(self).__name__, inputs.shape, 2)
        channels = math.prod(channel_shape)
        shape = ops.shape(inputs)
        batch, time = shape[0], shape[1]
        out = strided_length(time, self.window, self.stride)
        x = ops.reshape(inputs, (batch, time, channels))
        if self._taps is None:
            x = ops.take(x, ops.arange(out, dtype="int32") * self.stride + self.stride - 1, axis=1)
        else:
            # Inputs shorter than the filter give no output; pad them so the convolution has a
            # valid shape, then keep the outputs that read real samples only (none).
            x = ops.pad(x, ((0, 0), (0, ops.maximum(self.window - time, 0)), (0, 0)))
            kernel = np.tile(self._taps[::-1, None, None], (1, channels, 1))
            x = ops.depthwise_conv(x, ops.convert_to_tensor(kernel, x.dtype), strides=self.stride,
                                   padding="valid")[:, :out]
        return ops.reshape(x, (batch, out, *channel_shape))

    def compute_output_shape(self, input_shape):
        time = input_shape[1]
        frames = None if time is None else strided_length(int(time), self.window, self.stride)
        return (input_shape[0], frames, *input_shape[2:])

    def compute_output_length(self, lengths):
        """Output samples of inputs of ``lengths`` samples (int, numpy or tensor)."""
        return strided_length(lengths, self.window, self.stride)

    def temporal_reach(self) -> Reach:
        """An unpadded window and stride of raw input samples before the spectrogram: the emission
        rule counts them (its ``n_fft`` and ``hop_length`` in input samples), the incremental step
        runs the filter on its raw overlap and new samples."""
        return Reach(raw_samples=True)


@register
class LowPassFilter(_SampleFilter):
    """Low-pass smoothing of each channel's raw signal: a linear-phase FIR filter of ``num_taps``
    taps (Hamming-windowed sinc, ``lowpass_taps``) with cutoff ``cutoff_hz`` at
    ``sample_rate``, no padding (Chen et al.'s "frequency smoothing", 30 Hz).

    Input ``(B, T, 2, 16)`` (any static channel dims), output ``(B, T - num_taps + 1, 2, 16)``:
    output sample ``j`` is ``sum_i h[i] x[j + num_taps - 1 - i]``, input samples ``j ..
    j + num_taps - 1`` (centred on input sample ``j + (num_taps - 1) / 2``).

    Temporal reach: ``num_taps - 1`` input samples per output sample, all of them real input (no
    padding), i.e. ``(num_taps - 1) / 2`` samples of past and of future around its centre; the
    emission rule counts them (``n_fft`` grows by ``num_taps - 1``), nothing beyond.
    """

    def __init__(self, cutoff_hz: float = 30.0, num_taps: int = 255,
                 sample_rate: float = SAMPLE_RATE, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_taps = check_int("LowPassFilter", "num_taps", num_taps, 1)
        self.sample_rate = float(sample_rate)
        self.cutoff_hz = float(cutoff_hz)
        if not 0 < self.cutoff_hz < self.sample_rate / 2:
            raise EmgtfError(f"LowPassFilter: cutoff_hz must be in (0, {self.sample_rate / 2:g}) Hz "
                             f"(the Nyquist frequency of {self.sample_rate:g} Hz), got {cutoff_hz!r}")
        self._setup(lowpass_taps(self.cutoff_hz, self.sample_rate, self.num_taps), 1)

    def get_config(self):
        return {**super().get_config(), "cutoff_hz": self.cutoff_hz, "num_taps": self.num_taps,
                "sample_rate": self.sample_rate}


@register
class Downsample(_SampleFilter):
    """A lower sample rate: every ``factor``-th sample, after an anti-aliasing low-pass or not.

    - ``anti_alias=False`` (Hariharan et al.: every n-th sample): output sample ``j`` is input
      sample ``j * factor + factor - 1`` (the last of each block of ``factor``, so that a
      frame's samples are whole blocks); ``T // factor`` outputs (window ``factor``).
    - ``anti_alias=True`` (a resampler, Chen et al.'s 2 kHz -> 1 kHz): first a linear-phase FIR
      low-pass at the new Nyquist frequency, ``sample_rate / (2 * factor)``, of ``num_taps``
      taps (default ``20 * factor + 1``, scipy.signal.decimate's FIR design; the model front end
      takes a few more so that a spectrogram frame reads whole hops), unpadded; output ``j`` reads
      input samples ``j * factor .. j * factor + num_taps - 1``;
      ``max(0, (T - num_taps) // factor + 1)`` outputs (window ``num_taps``).

    Input ``(B, T, 2, 16)`` (any static channel dims), output ``(B, T', 2, 16)`` as above.

    Temporal reach: per output sample, the ``window`` input samples from ``j * factor`` on (no
    padding), outputs every ``factor`` input samples; the emission rule counts them: ``n_fft``
    and ``hop_length`` in input samples become ``factor * (n_fft - 1) + window`` and
    ``factor * hop_length``.
    """

    def __init__(self, factor: int = 2, anti_alias: bool = True, num_taps: int | None = None,
                 sample_rate: float = SAMPLE_RATE, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.factor = check_int("Downsample", "factor", factor, 1)
        if not isinstance(anti_alias, bool):
            raise EmgtfError(f"Downsample: anti_alias must be true or false, got {anti_alias!r}")
        self.anti_alias = anti_alias
        self.sample_rate = float(sample_rate)
        self.num_taps = None
        taps = None
        if anti_alias:
            self.num_taps = check_int("Downsample", "num_taps",
                                      20 * self.factor + 1 if num_taps is None else num_taps, 1)
            taps = lowpass_taps(self.sample_rate / (2 * self.factor), self.sample_rate,
                                self.num_taps) if self.factor > 1 else np.ones(1, "float32")
        self._setup(taps, self.factor)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "anti_alias": self.anti_alias,
                "num_taps": self.num_taps, "sample_rate": self.sample_rate}


@register
class MinMaxNormalization(keras.layers.Layer):
    """Each channel of each example scaled to [0, 1] by its minimum and maximum over the input's
    time axis (Hariharan et al.): ``(x - min) / (max - min + 1e-6)``.

    Input and output ``(B, T, 2, 16)`` (any dims after time). The statistics are those of the
    whole input: a training window, and at evaluation the whole session (the reference tests each
    session as one input), as a per-window transform of the reference's data pipeline computes
    them. The EMG is high-pass filtered (zero mean), so its minimum is below 0 and its maximum
    above: zero padding of a batch changes neither.

    Temporal reach: unbounded, past and future (every output sample depends on the whole input),
    so a model with this layer cannot stream exactly and is refused by the streaming decoder.
    """

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise EmgtfError("MinMaxNormalization: input must be (batch, time, channels...), "
                             f"got {tuple(input_shape)}")
        self.built = True

    def call(self, inputs):
        low = ops.min(inputs, axis=1, keepdims=True)
        high = ops.max(inputs, axis=1, keepdims=True)
        return (inputs - low) / (high - low + MINMAX_EPSILON)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def temporal_reach(self) -> Reach:
        """The whole input: no emission is final before it ends (chunked inference runs it whole)."""
        return Reach(unbounded_future=True,
                     why="scales each channel by the minimum and maximum of the whole input "
                     "(model.minmax=true), so no emission is final before the session ends",
                     fix="stream a model without it (model.minmax=false) or the TDS baseline")


@register
class ElectrodeSubset(keras.layers.Layer):
    """Keeps the electrodes ``channels`` of each band and sets the others to exactly 0 (Hou, Li,
    Hu's channel study).

    Input and output ``(B, F, 2, 16, ...)``: axis 3 is the electrode (any dims after). The same
    electrodes of both bands are kept (the bands are mirror images). The model keeps its 16
    electrode slots, so the rotation-invariant MLP's rolls by one electrode stay rotations of the
    band, and the data pipeline's band rotation moves the kept electrodes as it moves the band.

    Temporal reach: none (each frame from itself).
    """

    def __init__(self, channels=tuple(range(NUM_CHANNELS)), num_electrodes: int = NUM_CHANNELS,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_electrodes = check_int("ElectrodeSubset", "num_electrodes", num_electrodes, 1)
        channels = list(channels)
        if (not channels or len(set(channels)) != len(channels)
                or any(isinstance(c, bool) or not isinstance(c, (int, np.integer))
                       or not 0 <= c < self.num_electrodes for c in channels)):
            raise EmgtfError(f"ElectrodeSubset: channels must be distinct electrode indices in "
                             f"0..{self.num_electrodes - 1}, at least one, got {channels!r}")
        self.channels = sorted(int(c) for c in channels)
        mask = np.zeros(self.num_electrodes, "float32")
        mask[self.channels] = 1.0
        self._mask = mask

    def build(self, input_shape):
        if len(input_shape) < 4 or input_shape[3] != self.num_electrodes:
            raise EmgtfError(f"ElectrodeSubset: input must be (batch, time, bands, "
                             f"{self.num_electrodes}, ...), got {tuple(input_shape)}")
        self.built = True

    def call(self, inputs):
        shape = (self.num_electrodes,) + (1,) * (len(inputs.shape) - 4)
        mask = ops.convert_to_tensor(self._mask.reshape(shape), inputs.dtype)
        return inputs * mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def temporal_reach(self) -> Reach:
        """Each frame from itself."""
        return PER_FRAME

    def get_config(self):
        return {**super().get_config(), "channels": list(self.channels),
                "num_electrodes": self.num_electrodes}


@register
class RandomTimeCrop(keras.layers.Layer):
    """While training, a random run of ``frames`` consecutive frames of each example (Chen et
    al.'s random crop of 512 frames); the identity at inference.

    Input ``(B, F, ...)``, output ``(B, min(frames, F), ...)`` when training, else the input. The
    start is drawn per example, uniform over ``0 .. F - frames``. The labels are not cut: the
    CTC loss clips each window's emission length to the frames the batch has (emgtf's
    ``CTCLoss``), so a window keeps its keys while its output covers the crop only (as the
    report's crop of the spectrogram did); training windows all have the same length, so no
    padding is cropped in.

    Temporal reach: none at inference (identity).
    """

    def __init__(self, frames: int = 512, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.frames = check_int("RandomTimeCrop", "frames", frames, 1)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise EmgtfError(f"RandomTimeCrop: input must be (batch, frames, ...), "
                             f"got {tuple(input_shape)}")
        static_channels("RandomTimeCrop", input_shape, 2)
        self.built = True

    def call(self, inputs, training=None):
        if not training:
            return inputs
        feature_shape = static_channels("RandomTimeCrop", inputs.shape, 2)
        shape = ops.shape(inputs)
        batch, frames = shape[0], shape[1]
        keep = ops.minimum(frames, self.frames)
        u = keras.random.uniform((batch,), seed=self.seed_generator)
        start = ops.cast(ops.floor(u * ops.cast(frames - keep + 1, "float32")), "int32")
        index = start[:, None] + ops.arange(keep, dtype="int32")[None, :]  # (B, keep)
        x = ops.reshape(inputs, (-1, math.prod(feature_shape)))
        offset = ops.arange(batch, dtype="int32")[:, None] * frames
        x = ops.take(x, ops.reshape(index + offset, (-1,)), axis=0)
        return ops.reshape(x, (batch, keep, *feature_shape))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, *input_shape[2:])

    def temporal_reach(self) -> Reach:
        """The identity at inference."""
        return PER_FRAME

    def get_config(self):
        return {**super().get_config(), "frames": self.frames, "seed": self.seed}
