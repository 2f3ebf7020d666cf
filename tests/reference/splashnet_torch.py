"""SplashNet (arXiv 2506.12356) in PyTorch, written independently from DATA.md's facts, as a
reference for emgtf's import of its checkpoints.

The changes to Meta's baseline (tds_torch.py, whose spectrogram, rotation-invariant MLP and TDS
blocks are reused unchanged): the 33 log10 bins summed into 6 bands (bins 1, 2-3, 4-7, 8-11,
12-21, 22-32), so each band's MLP input is 16 x 6 = 96; rolling time normalisation (no
parameters) instead of SpectrogramNorm (``spec_norm="rolling"``; ``"batch"`` keeps Meta's
BatchNorm); split-and-share: one MLP and one TDS encoder for both hands when
``share_hand_weights``, else one of each per hand; the hands meet only in the classifier.

State-dict keys. DATA.md gives SplashNet's hyperparameters but not its key names, so these are
derived in the style of Meta's (``nn.Sequential`` indices under ``model``, a ModuleList of MLPs
under ``mlps``), one module per hand's weights (1 when shared, else 2):

    model.0.batch_norm.*                                   spec_norm="batch" only
    model.1.mlps.{h}.mlp.{2i}.weight/bias                  Linear (out, in), in = electrode * 6 + band
    model.2.encoders.{h}.tds_conv_blocks.{2k}.conv2d.*     Conv2d(C, C, (1, kernel_width))
    model.2.encoders.{h}.tds_conv_blocks.{2k}.layer_norm.* over one hand's mlp_features[-1]
    model.2.encoders.{h}.tds_conv_blocks.{2k+1}.fc_block.{0,2}.* and .layer_norm.*
    model.4.weight/bias                                    Linear(2 * mlp_features[-1] -> 99)

``model.3`` is the flatten (hand-major: index = hand * mlp_features[-1] + k), ``model.5`` the
log-softmax.
"""

from __future__ import annotations

import torch
from torch import nn

from tests.reference.tds_torch import (
    ELECTRODES,
    NUM_BANDS,
    NUM_CLASSES,
    LogSpectrogram,
    RotationInvariantMLP,
    SpectrogramNorm,
    TDSConvEncoder,
    save_lightning_ckpt as _save_tds_ckpt,
)

# SplashNet's 6 frequency bands as [first, last] bins of the 33 (DATA.md).
BANDS = ((1, 1), (2, 3), (4, 7), (8, 11), (12, 21), (22, 32))
WARMUP = 125  # frames (1 s) that share the statistics of the first second
EPSILON = 0.1

SIZES = {
    "splashnet": {"mlp_features": [528], "block_channels": [24, 24, 48, 48]},
    "splashnet_mini": {"mlp_features": [384], "block_channels": [24, 24, 24, 24]},
}
DEFAULT_HYPERPARAMETERS = {
    "in_features": ELECTRODES * len(BANDS),
    **SIZES["splashnet"],
    "kernel_width": 32,
    "share_hand_weights": True,
    "spec_norm": "rolling",
}


def spectrum_bands(x: torch.Tensor) -> torch.Tensor:
    """(..., 33) log10 bins -> (..., 6): each band the sum of its bins' log values."""
    return torch.stack([x[..., lo : hi + 1].sum(dim=-1) for lo, hi in BANDS], dim=-1)


class RollingTimeNorm(nn.Module):
    """(T, N, ...) -> same: each feature of frame t minus the mean of its example's frames 0..t,
    over sqrt(their population variance + 0.1); frames before the 125th use the first 125 frames'
    statistics (all frames when the input is shorter). No parameters, so no state-dict keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x64 = x.double()
        t = x.shape[0]
        seen = torch.arange(1, t + 1, dtype=torch.float64).reshape(t, *([1] * (x.dim() - 1)))
        mean = x64.cumsum(0) / seen
        var = (x64 * x64).cumsum(0) / seen - mean * mean
        warm = min(t, WARMUP)
        mean[:warm] = mean[warm - 1]
        var[:warm] = var[warm - 1]
        return ((x64 - mean) / torch.sqrt(var + EPSILON)).to(x.dtype)


class HandMLPs(nn.Module):
    """(T, N, hands, electrodes, bands) -> (T, N, hands, mlp_features[-1]): one rotation-invariant
    MLP shared by the hands, or one each."""

    def __init__(self, in_features: int, mlp_features, shared: bool):
        super().__init__()
        self.mlps = nn.ModuleList(
            RotationInvariantMLP(in_features, mlp_features) for _ in range(1 if shared else NUM_BANDS)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [self.mlps[h % len(self.mlps)](x[:, :, h]) for h in range(NUM_BANDS)], dim=2
        )


class HandEncoders(nn.Module):
    """(T, N, hands, f) -> (T - lost, N, hands, f): a TDS encoder on each hand's features,
    shared or one each (LayerNorm over the hand's f features)."""

    def __init__(self, features: int, block_channels, kernel_width: int, shared: bool):
        super().__init__()
        self.encoders = nn.ModuleList(
            TDSConvEncoder(features, block_channels, kernel_width)
            for _ in range(1 if shared else NUM_BANDS)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [self.encoders[h % len(self.encoders)](x[:, :, h]) for h in range(NUM_BANDS)], dim=2
        )


class SplashNet(nn.Module):
    """Raw EMG (N, samples, 2, 16) -> log-probabilities (N, frames - blocks * (kernel_width - 1),
    99), frames = 1 + (samples - 64) // 16."""

    def __init__(self, in_features=96, mlp_features=(528,), block_channels=(24, 24, 48, 48),
                 kernel_width=32, share_hand_weights=True, spec_norm="rolling"):
        super().__init__()
        if in_features != ELECTRODES * len(BANDS):
            raise ValueError(f"in_features {in_features}: SplashNet's is 16 electrodes x 6 bands")
        self.spectrogram = LogSpectrogram(n_fft=64, hop_length=16)
        norms = {"rolling": RollingTimeNorm, "batch": lambda: SpectrogramNorm(NUM_BANDS * ELECTRODES)}
        features = list(mlp_features)[-1]
        self.model = nn.Sequential(
            norms[spec_norm](),
            HandMLPs(in_features, list(mlp_features), share_hand_weights),
            HandEncoders(features, list(block_channels), kernel_width, share_hand_weights),
            nn.Flatten(start_dim=2),
            nn.Linear(NUM_BANDS * features, NUM_CLASSES),
            nn.LogSoftmax(dim=-1),
        )

    def forward(self, emg: torch.Tensor) -> torch.Tensor:
        x = spectrum_bands(self.spectrogram(emg)).movedim(1, 0)  # (T, N, hands, electrodes, 6)
        return self.model(x).movedim(0, 1)


def make_splashnet_torch(size: str = "splashnet", **hyperparameters) -> SplashNet:
    """A SplashNet of ``size`` ("splashnet" or "splashnet_mini") with these hyperparameters."""
    return SplashNet(**{**DEFAULT_HYPERPARAMETERS, **SIZES[size], **hyperparameters})


def save_lightning_ckpt(model: SplashNet, path, hyper_parameters: dict) -> None:
    """``model`` as a Lightning ``.ckpt`` (tds_torch's layout) with SplashNet's hyperparameters."""
    _save_tds_ckpt(model, path, {**DEFAULT_HYPERPARAMETERS, **hyper_parameters})
