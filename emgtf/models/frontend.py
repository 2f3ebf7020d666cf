"""The parts every model family shares: spectrogram front end, feature front, output head.

Raw EMG ``(batch, samples, 2, 16)`` -> LogSpectrogram -> SpecAugment (training only) ->
TemporalCropResize (training only, when ``temporal_crop`` > 0) -> SpectrogramNorm -> a front that
turns each frame into a feature vector: Meta's rotation-invariant MLP, or a Dense stack on the
flattened spectrogram -> (family body) -> Dense(99) -> log-softmax.
"""

from __future__ import annotations

import keras

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.charset import charset
from emgtf.models import hyperparameters as H
from emgtf.models.layers import (
    LogSpectrogram,
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


def spectrogram(inputs, hp: dict):
    """Normalised log spectrogram ``(batch, frames, 2, 16, bins)`` of raw EMG: ``n_fft // 2 + 1``
    bins, or 6 with ``spectrum="6band"`` (summed before SpecAugment, so its frequency masks cover
    bands, as in SplashNet)."""
    x = LogSpectrogram(n_fft=hp["n_fft"], hop_length=hp["hop_length"], name="log_spectrogram")(
        inputs
    )
    if hp["spectrum"] == "6band":
        x = SpectrumBands(name="spectrum_bands")(x)
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
        return RollingTimeNorm(name="rolling_time_norm")(x)
    if hp["norm"] == "none":  # SplashNet's spec_norm='None' ablation
        return x
    return SpectrogramNorm(name="spectrogram_norm")(x)


def bins(hp: dict) -> int:
    """Frequency bins per electrode of :func:`spectrogram`."""
    return 6 if hp["spectrum"] == "6band" else hp["n_fft"] // 2 + 1


def front_width(hp: dict) -> int:
    """Features per frame out of :func:`features` (both fronts give the same width)."""
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
