"""SplashNet (arXiv 2506.12356) in PyTorch, written independently from DATA.md's facts, as a
reference for emgtf's import of its checkpoints.

The module tree gives ``state_dict()`` exactly the keys and shapes of the authors' Lightning
checkpoints (shared/fixtures/splashnet-checkpoint-layout.txt): ``model`` is an ``nn.Sequential``

    model.0  spectrogram normalisation by ``spec_norm``: 'BatchNorm2d' (Meta's SpectrogramNorm,
             ``model.0.batch_norm.*``), 'RollingTimeNorm' or 'None' (no parameters, no keys)
    model.1  ``mlps``: one rotation-invariant MLP for both hands (``share_hand_weights``) or one
             per hand; input ``in_features`` = 16 electrodes x 6 bands (96) or x 33 bins (528)
    model.2  flatten, hand-major: index = hand * mlp_features[-1] + k
    model.3  ``tds_conv_blocks``: Meta's TDS blocks (tds_torch.py) over both hands' features, or,
             shared, over each hand's half with the same weights (LayerNorm over the half)
    model.4  Linear(2 * mlp_features[-1] -> 99); model.5 log-softmax

The changes to Meta's baseline (tds_torch.py, whose spectrogram, MLP and TDS blocks are reused):
the 33 log10 bins summed into 6 bands (bins 1, 2-3, 4-7, 8-11, 12-21, 22-32) when
``in_features`` is 96; rolling time normalisation; split-and-share.
"""

from __future__ import annotations

import torch
from torch import nn

from tests.reference import lightning_ckpt
from tests.reference.tds_torch import (
    ELECTRODES,
    NUM_BANDS,
    NUM_CLASSES,
    LogSpectrogram,
    RotationInvariantMLP,
    SpectrogramNorm,
    TDSConv2dBlock,
    TDSFullyConnectedBlock,
)

# SplashNet's 6 frequency bands as [first, last] bins of the 33 (DATA.md).
BANDS = ((1, 1), (2, 3), (4, 7), (8, 11), (12, 21), (22, 32))
WARMUP = 125  # frames (1 s) that share the statistics of the first second
EPSILON = 0.1
SPEC_NORMS = ("RollingTimeNorm", "BatchNorm2d", "None")

SIZES = {
    "splashnet": {"mlp_features": [528], "block_channels": [24, 24, 48, 48]},
    "splashnet_mini": {"mlp_features": [384], "block_channels": [24, 24, 24, 24]},
}
# The released generic files' settings; the module's own defaults are share_hand_weights=False,
# split_decoding=False, spec_norm='BatchNorm2d'.
DEFAULT_HYPERPARAMETERS = {
    "in_features": ELECTRODES * len(BANDS),
    **SIZES["splashnet"],
    "kernel_width": 32,
    "share_hand_weights": True,
    "split_decoding": False,
    "spec_norm": "RollingTimeNorm",
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


def spec_norm_module(spec_norm: str) -> nn.Module:
    if spec_norm == "BatchNorm2d":
        return SpectrogramNorm(NUM_BANDS * ELECTRODES)
    if spec_norm == "RollingTimeNorm":
        return RollingTimeNorm()
    if spec_norm == "None":
        return nn.Identity()
    raise ValueError(f"spec_norm {spec_norm!r}: one of {SPEC_NORMS}")


class HandMLPs(nn.Module):
    """(T, N, hands, electrodes, bins) -> (T, N, hands, mlp_features[-1]): one rotation-invariant
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


class TDSEncoder(nn.Module):
    """(T, N, 2f) -> (T - lost, N, 2f): Meta's conv and FC blocks over all 2f features, or, with
    ``shared``, over each hand's f features in turn (hands folded into the batch)."""

    def __init__(self, features: int, block_channels, kernel_width: int, shared: bool):
        super().__init__()
        self.shared = shared
        width = features // NUM_BANDS if shared else features
        blocks: list[nn.Module] = []
        for channels in block_channels:
            if width % channels:
                raise ValueError(f"{channels} channels do not divide {width} features")
            blocks += [TDSConv2dBlock(channels, width // channels, kernel_width),
                       TDSFullyConnectedBlock(width)]
        self.tds_conv_blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.shared:
            return self.tds_conv_blocks(x)
        t, n, features = x.shape
        y = self.tds_conv_blocks(x.reshape(t, n * NUM_BANDS, features // NUM_BANDS))
        return y.reshape(y.shape[0], n, features)


class SplashNet(nn.Module):
    """Raw EMG (N, samples, 2, 16) -> log-probabilities (N, frames - blocks * (kernel_width - 1),
    99), frames = 1 + (samples - 64) // 16."""

    def __init__(self, in_features=96, mlp_features=(528,), block_channels=(24, 24, 48, 48),
                 kernel_width=32, share_hand_weights=True, split_decoding=False,
                 spec_norm="RollingTimeNorm"):
        super().__init__()
        if in_features not in (ELECTRODES * len(BANDS), ELECTRODES * 33):
            raise ValueError(f"in_features {in_features}: 96 (6 bands) or 528 (33 bins)")
        self.bands = in_features == ELECTRODES * len(BANDS)
        self.spectrogram = LogSpectrogram(n_fft=64, hop_length=16)
        features = NUM_BANDS * list(mlp_features)[-1]
        self.model = nn.Sequential(
            spec_norm_module(spec_norm),
            HandMLPs(in_features, list(mlp_features), share_hand_weights),
            nn.Flatten(start_dim=2),
            TDSEncoder(features, list(block_channels), kernel_width, share_hand_weights),
            nn.Linear(features, NUM_CLASSES),
            nn.LogSoftmax(dim=-1),
        )

    def forward(self, emg: torch.Tensor) -> torch.Tensor:
        x = self.spectrogram(emg)
        if self.bands:
            x = spectrum_bands(x)
        return self.model(x.movedim(1, 0)).movedim(0, 1)  # time first inside, as the module


def hyperparameters(size: str = "splashnet", **overrides) -> dict:
    """The saved hyperparameters of a SplashNet of ``size`` with ``overrides``."""
    unknown = set(overrides) - set(DEFAULT_HYPERPARAMETERS)
    if unknown:
        raise TypeError(f"unknown hyperparameters: {sorted(unknown)}")
    return {**DEFAULT_HYPERPARAMETERS, **SIZES[size], **overrides}


def make_splashnet_torch(size: str = "splashnet", **overrides) -> SplashNet:
    """A SplashNet of ``size`` ("splashnet" or "splashnet_mini") with these hyperparameters."""
    return SplashNet(**hyperparameters(size, **overrides))


def save_lightning_ckpt(model: SplashNet, path, hyper_parameters: dict) -> None:
    """``model`` as the authors' Lightning ``.ckpt`` (the whole envelope) with these saved
    ``hyper_parameters``."""
    lightning_ckpt.save_lightning_ckpt(model, path, {**DEFAULT_HYPERPARAMETERS, **hyper_parameters})
