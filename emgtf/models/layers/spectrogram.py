"""The log spectrogram, the first layer of every model: raw EMG in, log10 power per frame out.

Shapes use B = batch, T = samples, F = spectrogram frames, C = frequency bins (n_fft // 2 + 1).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from emgtf.errors import EmgtfError
from emgtf.models.layers.base import PER_FRAME, Reach, check_int, register, static_channels

# Added to the power before the log, so that silent (zero-padded) stretches give a finite -6.
POWER_FLOOR = 1e-6


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


@register
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
        self.n_fft = check_int("LogSpectrogram", "n_fft", n_fft, 2)
        self.hop_length = check_int("LogSpectrogram", "hop_length", hop_length, 1)
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
        static_channels("LogSpectrogram", input_shape, 2)
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        channel_shape = static_channels("LogSpectrogram", x.shape, 2)
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

    def temporal_reach(self) -> Reach:
        """Each frame from its own ``n_fft`` samples (the emission rule counts them)."""
        return PER_FRAME

    def get_config(self):
        config = super().get_config()
        config.update({"n_fft": self.n_fft, "hop_length": self.hop_length})
        return config


# SplashNet's reduced spectral resolution: log10 bins summed into 6 bands, DC dropped.
SPLASHNET_BAND_EDGES = (1, 2, 4, 8, 12, 22, 33)


@register
class SpectrumBands(keras.layers.Layer):
    """Sums the log spectrogram's frequency bins into bands (SplashNet, arXiv 2506.12356).

    Input ``(B, F, ..., C)`` with ``C`` bins, output ``(B, F, ..., len(edges) - 1)``: band ``k`` is
    the sum of the log values (not the power) of bins ``edges[k] .. edges[k + 1] - 1``. The
    default edges give SplashNet's 6 bands of the 33 bins: 1, 2-3, 4-7, 8-11, 12-21, 22-32.
    """

    def __init__(self, edges=SPLASHNET_BAND_EDGES, **kwargs):
        super().__init__(**kwargs)
        self.edges = [int(e) for e in edges]
        if len(self.edges) < 2 or any(b <= a for a, b in zip(self.edges, self.edges[1:])) or self.edges[0] < 0:
            raise EmgtfError(f"SpectrumBands: edges must be increasing integers >= 0, got {list(edges)}")

    def build(self, input_shape):
        bins = input_shape[-1]
        if bins is None or self.edges[-1] > bins:
            raise EmgtfError(f"SpectrumBands: edges end at bin {self.edges[-1]}, the input has {bins} bins")
        matrix = np.zeros((bins, len(self.edges) - 1), "float32")
        for k, (lo, hi) in enumerate(zip(self.edges, self.edges[1:])):
            matrix[lo:hi, k] = 1.0
        self._matrix = matrix

    def call(self, inputs):
        return ops.matmul(inputs, ops.convert_to_tensor(self._matrix, dtype=inputs.dtype))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], len(self.edges) - 1)

    def temporal_reach(self) -> Reach:
        """Each frame's bins pooled into bands."""
        return PER_FRAME

    def get_config(self):
        return {**super().get_config(), "edges": list(self.edges)}
