"""The parts every model family shares: spectrogram front end, feature front, output head.

Raw EMG ``(batch, samples, 2, 16)`` -> [MinMaxNormalization (``minmax``)] -> [LowPassFilter
(``lowpass_hz``)] -> [Downsample (``downsample`` > 1)] -> LogSpectrogram -> [RandomTimeCrop
(training only, ``random_crop`` > 0)] -> SpecAugment (training only) -> TemporalCropResize
(training only, when ``temporal_crop`` > 0) -> SpectrogramNorm (``norm``: RollingTimeNorm for
"rolling", none for "none") -> [ElectrodeSubset (``electrodes``,
``electrode_start``, ``electrode_count``)] -> a front that turns each frame into a feature vector:
Meta's rotation-invariant MLP, or a Dense stack on the flattened spectrogram -> (family body) ->
Dense(99) -> log-softmax.

With ``downsample`` = k the spectrogram's ``n_fft`` and ``hop_length`` count samples at the lower
rate: frames come every ``k * hop_length`` input samples, ``2000 / (k * hop_length)`` frames a
second (62.5 at k = 2 with the default hop of 16), each ``n_fft`` samples at ``2000 / k`` Hz. Set
``hop_length`` to ``16 / k`` to keep 125 frames a second.
"""

from __future__ import annotations

import keras

from emgtf import NUM_BANDS, NUM_CHANNELS, SAMPLE_RATE
from emgtf.charset import charset
from emgtf.models import hyperparameters as H
from emgtf.models.layers import (
    Downsample,
    ElectrodeSubset,
    LogSpectrogram,
    LowPassFilter,
    MinMaxNormalization,
    RandomTimeCrop,
    RollingTimeNorm,
    RotationInvariantMLP,
    SpecAugment,
    SpectrogramNorm,
    SpectrumBands,
    TemporalCropResize,
)
from emgtf.models.regularizers import Regularization


def emg_input() -> keras.KerasTensor:
    return keras.Input(shape=(None, NUM_BANDS, NUM_CHANNELS), dtype="float32", name="emg")


def electrodes(hp: dict) -> list[int] | None:
    """The electrodes each band keeps (``electrodes``, or ``electrode_count`` from
    ``electrode_start``); None for all 16."""
    if hp["electrodes"] is not None:
        kept = sorted(hp["electrodes"])
    else:
        count = hp["electrode_count"] or NUM_CHANNELS - hp["electrode_start"]
        kept = list(range(hp["electrode_start"], hp["electrode_start"] + count))
    return None if kept == list(range(NUM_CHANNELS)) else kept


def downsample_taps(hp: dict) -> int | None:
    """The anti-aliasing filter's length: the fewest taps from scipy.signal.decimate's
    ``20 * factor + 1`` on that make a spectrogram frame read whole hops of input samples
    (``factor * (n_fft - 1) + taps`` a multiple of ``factor * hop_length``), as streaming a chunk
    of whole hops needs; None without anti-aliasing."""
    k = hp["downsample"]
    if not hp["anti_alias"] or k == 1:
        return None
    period = k * hp["hop_length"]
    residue = -k * (hp["n_fft"] - 1) % period
    least = 20 * k + 1
    return least + (residue - least) % period


def _downsample(hp: dict, **kwargs) -> Downsample:
    return Downsample(hp["downsample"], hp["anti_alias"], downsample_taps(hp), SAMPLE_RATE, **kwargs)


def sample_geometry(hp: dict) -> tuple[int, int]:
    """(samples a spectrogram frame reads, samples between frames) in input samples (2 kHz):
    ``n_fft`` and ``hop_length`` when the signal reaches the spectrogram unfiltered, more after
    the low-pass filter and the downsampling (see ``emgtf.models.layers.preprocessing``)."""
    window, stride = 1, 1
    if hp["lowpass_hz"] is not None:
        window += hp["lowpass_taps"] - 1
    if hp["downsample"] > 1:
        layer = _downsample(hp)
        window, stride = window + stride * (layer.window - 1), stride * layer.stride
    return window + stride * (hp["n_fft"] - 1), stride * hp["hop_length"]


def preprocess(inputs, hp: dict):
    """The raw-signal preprocessing of the course reports that ``hp`` asks for (none by default):
    min-max normalisation, low-pass smoothing, a lower sample rate, in that order."""
    x = inputs
    if hp["minmax"]:
        x = MinMaxNormalization(name="minmax")(x)
    if hp["lowpass_hz"] is not None:
        x = LowPassFilter(hp["lowpass_hz"], hp["lowpass_taps"], SAMPLE_RATE, name="lowpass")(x)
    if hp["downsample"] > 1:
        x = _downsample(hp, name="downsample")(x)
    return x


def spectrogram(inputs, hp: dict):
    """Normalised log spectrogram ``(batch, frames, 2, 16, bins)`` of raw EMG: ``n_fft // 2 + 1``
    bins, or 6 with ``spectrum="6band"`` (summed before SpecAugment, so its frequency masks cover
    bands, as in SplashNet). The preprocessing of ``preprocess`` first; the electrodes outside
    ``electrodes`` zeroed last (after the normalisation, so they are exactly 0 whatever its
    statistics, in training and inference alike)."""
    x = LogSpectrogram(n_fft=hp["n_fft"], hop_length=hp["hop_length"], name="log_spectrogram")(
        preprocess(inputs, hp)
    )
    if hp["spectrum"] == "6band":
        x = SpectrumBands(name="spectrum_bands")(x)
    if hp["random_crop"] > 0:
        x = RandomTimeCrop(hp["random_crop"], seed=hp["seed"], name="random_crop")(x)
    if hp["spec_augment"]:
        x = SpecAugment(
            n_time_masks=hp["n_time_masks"],
            time_mask_param=hp["time_mask_param"],
            n_freq_masks=hp["n_freq_masks"],
            freq_mask_param=hp["freq_mask_param"],
            seed=hp["seed"],
            name="spec_augment",
        )(x)
    if hp["temporal_crop"] > 0:
        x = TemporalCropResize(
            max_crop=hp["temporal_crop"], seed=hp["seed"], name="temporal_crop"
        )(x)
    if hp["norm"] == "rolling":
        x = RollingTimeNorm(name="rolling_time_norm")(x)
    elif hp["norm"] != "none":  # "none": SplashNet's spec_norm='None' ablation
        x = SpectrogramNorm(name="spectrogram_norm")(x)
    kept = electrodes(hp)
    if kept is not None:
        x = ElectrodeSubset(kept, name="electrode_subset")(x)
    return x


def bins(hp: dict) -> int:
    """Frequency bins per electrode of ``spectrogram``."""
    return 6 if hp["spectrum"] == "6band" else hp["n_fft"] // 2 + 1


def front_width(hp: dict) -> int:
    """Features per frame out of ``features`` (both fronts give the same width)."""
    return NUM_BANDS * hp["mlp_features"][-1]


def features(x, hp: dict, reg: Regularization, family: str, *, share_bands: bool = False):
    """Per-frame features ``(batch, frames, 2 * mlp_features[-1])`` of the spectrogram.

    ``front="rotation_mlp"``: Meta's per-band rotation-invariant MLP. ``front="dense"``: the
    flattened ``2 x 16 x bins`` spectrogram through Dense + ReLU layers of ``2 * f`` units for each
    ``f`` in ``mlp_features``, so either front feeds the same body. ``share_bands``: one MLP for
    both hands (SplashNet) instead of one per hand.
    """
    widths = H.int_list(family, hp, "mlp_features")
    if hp["front"] == "rotation_mlp":
        x = RotationInvariantMLP(
            features=widths, share_bands=share_bands, kernel_regularizer=reg.kernel_regularizer(),
            name="rotation_mlp",
        )(x)
    else:
        x = keras.layers.Reshape((-1, NUM_BANDS * NUM_CHANNELS * bins(hp)), name="flatten_bands")(x)
        for i, width in enumerate(widths):
            x = reg.dense(NUM_BANDS * width, activation="relu", name=f"front_dense_{i + 1}")(x)
    x = reg.apply_batch_norm(x, name="front_batch_norm")
    return reg.apply_dropout(x, name="front_dropout")


def head(x, reg: Regularization):
    """Per-frame log-probabilities over the 99 classes (98 keys + CTC blank)."""
    x = reg.dense(charset().num_classes, name="classifier")(x)
    # float32 even under mixed precision: CTC sums many log-probabilities.
    return keras.layers.Activation("log_softmax", dtype="float32", name="log_probs")(x)


def check_preprocessing_fits(model, rule, samples: int) -> None:
    """The course reports' preprocessing of ``model`` suits training windows of ``samples``
    samples (padding included): a downsampling that leaves fewer samples than the model's
    receptive field, or a random crop of at least the window's frames (nothing to crop) or of no
    more frames than the model's convolutions drop (no emission), is one line naming the key.
    ``rule``: the model's ``EmissionRule``."""
    from emgtf.errors import EmgtfError

    layers = {type(layer).__name__: layer for layer in model.layers}
    downsample = layers.get("Downsample")
    if downsample is not None and rule.emissions(samples) < 1:
        raise EmgtfError(
            f"model.downsample={downsample.factor}: a training window of {samples} samples "
            f"(trainer.window_length + trainer.padding) keeps {samples // downsample.factor} "
            f"samples, fewer than model '{model.name}' reads for one emission "
            f"({-(-rule.samples_for(1) // downsample.factor)} at the lower rate); lower the factor "
            f"or set trainer.window_length >= {rule.samples_for(1)} with the padding")
    crop = layers.get("RandomTimeCrop")
    if crop is None:
        return
    frames = rule.frames(samples)
    if crop.frames >= frames:
        raise EmgtfError(
            f"model.random_crop={crop.frames}: not shorter than the {frames} spectrogram frames of a "
            f"training window of {samples} samples (trainer.window_length + trainer.padding)")
    if crop.frames <= rule.lost_frames:
        raise EmgtfError(
            f"model.random_crop={crop.frames}: model '{model.name}' emits nothing for "
            f"{crop.frames} frames (it needs more than {rule.lost_frames})")
