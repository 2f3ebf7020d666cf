"""How many log-probability frames a model emits for an input of ``n`` samples.

``emission_lengths`` follows the lengths through a model's layers; ``emitted_frames``
clamps them to the frames a padded batch actually has (the one place that rule is written);
``EmissionRule`` is the same arithmetic as a closed formula, which export files record and
chunked or streamed decoding aligns on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from keras import ops

from emgtf import SAMPLE_RATE
from emgtf.checks import is_int
from emgtf.errors import EmgtfError
from emgtf.models.layers import LogSpectrogram, frames_for_samples, nonnegative


def emission_lengths(model, input_lengths):
    """Output frames of ``model`` for inputs of ``input_lengths`` samples.

    Composes ``compute_output_length`` of every layer that has one along the model's graph, from
    the input to the output: each layer's length is its first input's, so parallel branches of the
    same length (one TDS stack per hand) count once. Takes and returns the same kind: a python
    int, a numpy array (a list becomes one) or a tensor. Never negative: 0 means the input is too
    short to give any output.
    """
    return nonnegative(_lengths_after(model, input_lengths, model.outputs[0]._keras_history[0].name))


def _lengths_after(model, input_lengths, last: str):
    """The lengths of the output of layer ``last`` for inputs of ``input_lengths`` samples."""
    lengths = input_lengths
    if isinstance(lengths, (list, tuple)):
        lengths = np.asarray(lengths)
    after: dict[str, object] = {}  # layer name -> lengths of its output
    for layer in model.layers:  # topological order
        inputs = layer._inbound_nodes[0].input_tensors
        length = after[inputs[0]._keras_history[0].name] if inputs else lengths
        compute = getattr(layer, "compute_output_length", None)
        after[layer.name] = length if compute is None else compute(length)
        if layer.name == last:
            break
    return after[last]


def _sample_geometry(model, spectrogram) -> tuple[int, int]:
    """(input samples a spectrogram frame reads, input samples between frames) of ``model``:
    the spectrogram's own ``n_fft`` and ``hop_length`` unless unpadded filters or a lower sample
    rate come before it (``emgtf.models.layers.preprocessing``), read off the frame counts."""
    n_fft, hop = spectrogram.n_fft, spectrogram.hop_length
    if spectrogram.input is model.inputs[0]:
        return n_fft, hop
    samples = np.arange(1 << 16, dtype=np.int64)
    frames = np.asarray(_lengths_after(model, samples, spectrogram.name), np.int64)
    if frames[-1] < 2:
        raise EmgtfError(f"model '{model.name}': its spectrogram has under 2 frames of 65536 samples")
    n_fft = int(np.argmax(frames >= 1))
    hop = int(np.argmax(frames >= 2)) - n_fft
    if not np.array_equal(frames, frames_for_samples(samples, n_fft, hop)):
        raise EmgtfError(f"model '{model.name}': the layers before its spectrogram do not give "
                         "frames of a fixed number of samples at a fixed stride")
    return n_fft, hop


def emitted_frames(model, input_lengths, available_frames):
    """``emission_lengths``, at most ``available_frames`` (the frames of the batch's output): a
    length beyond the padded batch cannot emit frames the batch lacks. Numpy lengths give int64
    numpy; tensors (a traced export signature) give a tensor."""
    if isinstance(input_lengths, (list, tuple, np.ndarray, np.generic, int)):
        emitted = emission_lengths(model, np.asarray(input_lengths, np.int64))
        return np.minimum(np.asarray(emitted, np.int64), int(available_frames))
    emitted = emission_lengths(model, input_lengths)
    return ops.minimum(emitted, ops.cast(available_frames, emitted.dtype))


@dataclass(frozen=True)
class EmissionRule:
    """How many log-probability frames a model emits for ``n`` samples.

    ``frames = max(0, 1 + (n - n_fft) // hop_length)`` spectrogram frames (``n_fft`` and
    ``hop_length`` in input samples at ``sample_rate``: a model that filters or downsamples before
    its spectrogram reads more samples per frame than its spectrogram's ``n_fft``), then
    ``emissions = ceil(max(0, frames - lost_frames) / subsampling)``. ``lost_frames`` is what a
    chain of unpadded convolutions drops (TDS baseline: 4 x 31 = 124): its emission ``e`` reads
    frames ``e .. e + lost_frames``, so it sits ``lost_frames / 2`` frames later than frame ``e``.
    ``subsampling`` is the frame decimation of the model (the transformer's strided convolutions).

    Emission ``e`` of a chunk that starts at sample ``s`` (a multiple of ``stride``) is
    emission ``s // stride + e`` of the whole recording; the transcriber stitches chunks with that.
    """

    n_fft: int
    hop_length: int
    lost_frames: int = 0
    subsampling: int = 1
    sample_rate: int = SAMPLE_RATE

    @property
    def stride(self) -> int:
        """Samples per emission."""
        return self.hop_length * self.subsampling

    @property
    def emission_rate(self) -> float:
        """Emissions per second."""
        return self.sample_rate / self.stride

    @property
    def center_offset_frames(self) -> float:
        """Frames between spectrogram frame ``e * subsampling`` and the centre of emission ``e``."""
        return self.lost_frames / 2

    def frames(self, samples):
        """Spectrogram frames of ``samples`` samples (int or numpy array)."""
        if np.ndim(samples) == 0:
            return int(frames_for_samples(int(samples), self.n_fft, self.hop_length))
        return frames_for_samples(np.asarray(samples, np.int64), self.n_fft, self.hop_length)

    def emissions(self, samples):
        """Emitted frames of ``samples`` samples (int or numpy array)."""
        kept = np.maximum(np.asarray(self.frames(samples)) - self.lost_frames, 0)
        emitted = -(-kept // self.subsampling)
        return int(emitted) if np.ndim(emitted) == 0 else emitted

    def samples_for(self, emissions: int) -> int:
        """The fewest samples that give ``emissions`` emissions."""
        if emissions <= 0:
            return 0
        frames = self.lost_frames + self.subsampling * (emissions - 1) + 1
        return self.n_fft + (frames - 1) * self.hop_length

    def frames_formula(self) -> str:
        return f"max(0, 1 + (samples - {self.n_fft}) // {self.hop_length})"

    def describe(self) -> str:
        """The rule in the words of ``emgtf.models.emission_rule``: ``frames - 124`` and so on."""
        kept = f"frames - {self.lost_frames}" if self.lost_frames else "frames"
        if self.subsampling == 1:
            return kept
        kept = f"({kept})" if self.lost_frames else kept
        return f"ceil({kept} / {self.subsampling})"

    def to_json(self) -> dict:
        return {
            **asdict(self),
            "stride_samples": self.stride,
            "emission_rate_hz": self.emission_rate,
            "frames": self.frames_formula(),
            "emissions": self.describe() + " (never below 0)",
            "center_offset_frames": self.center_offset_frames,
        }

    @classmethod
    def from_json(cls, doc, source) -> "EmissionRule":
        """The rule of an ``export.json`` ``emission`` entry; ``source`` names the file in errors."""
        if not isinstance(doc, dict):
            raise EmgtfError(f"{source}: 'emission' must be an object")
        values = {}
        for key, minimum in (("n_fft", 1), ("hop_length", 1), ("lost_frames", 0), ("subsampling", 1),
                             ("sample_rate", 1)):
            value = doc.get(key)
            if not is_int(value) or value < minimum:
                raise EmgtfError(
                    f"{source}: 'emission.{key}' must be an integer >= {minimum}, got {value!r}"
                )
            values[key] = value
        return cls(**values)

    @classmethod
    def from_model(cls, model) -> "EmissionRule":
        """The rule of a Keras model, read off ``emgtf.models.emission_lengths`` by probing it."""
        spectrograms = [layer for layer in model.layers if isinstance(layer, LogSpectrogram)]
        if len(spectrograms) != 1:
            raise EmgtfError(
                f"model '{model.name}' has {len(spectrograms)} LogSpectrogram layers, expected one "
                "(not an emgtf model?)"
            )
        n_fft, hop = _sample_geometry(model, spectrograms[0])
        # Every frame count up to a few thousand, and sample counts between frame boundaries.
        frames = np.arange(4096, dtype=np.int64)
        samples = np.where(frames > 0, n_fft + (frames - 1) * hop, 0)
        samples = np.concatenate([samples, samples[1:] + hop - 1])
        emitted = np.asarray(emission_lengths(model, samples), dtype=np.int64)
        base = cls(n_fft=n_fft, hop_length=hop)
        span = 1024  # frames; a power of two, so any power-of-two decimation divides it
        far = base.frames(samples[3000])
        step = int(emitted[3000 + span] - emitted[3000])
        if step > 0 and span % step == 0:
            sub = span // step
            lowest = far - sub * int(emitted[3000])
            for lost in range(max(0, lowest), lowest + sub):
                rule = cls(n_fft=n_fft, hop_length=hop, lost_frames=lost, subsampling=sub)
                if np.array_equal(rule.emissions(samples), emitted):
                    return rule
        raise EmgtfError(
            f"model '{model.name}': its emission lengths are not ceil((frames - c) / k) for any c, k, "
            "so chunks of a session cannot be aligned"
        )
