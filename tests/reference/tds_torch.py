"""Meta's TDS-Conv CTC baseline in PyTorch, written independently, as a reference for emgtf.

The architecture follows the public emg2qwerty paper and repository (Sivakumar et al. 2024): the
module tree reproduces the reference's names, so ``state_dict()`` has exactly the keys of Meta's
released checkpoints (``model.0.batch_norm.*``, ``model.1.mlps.{0,1}.mlp.0.*``,
``model.3.tds_conv_blocks.{0..7}.*``, ``model.4.*``). Inside ``model`` the layout is the
reference's, time first: ``(T, N, bands, electrodes, freq)``.

Unlike the reference module, :class:`TDSConvCTC` takes raw EMG batch-first ``(N, samples, 2, 16)``
and computes the log spectrogram itself (it has no state, so it adds no keys), which makes its
output directly comparable with an emgtf model. Tests and benchmarks build it with
:func:`make_tds_torch` and write Meta's file formats with :func:`save_lightning_ckpt` and
:func:`save_safetensors`.
"""

from __future__ import annotations

import torch
from torch import nn

NUM_BANDS = 2
ELECTRODES = 16
NUM_CLASSES = 99  # 98 keys + CTC blank

DEFAULT_HYPERPARAMETERS = {
    "in_features": 528,
    "mlp_features": [384],
    "block_channels": [24, 24, 24, 24],
    "kernel_width": 32,
}


class LogSpectrogram(nn.Module):
    """(N, samples, *channels) raw EMG -> (N, frames, *channels, n_fft // 2 + 1) log10 power.

    Frames of ``n_fft`` samples every ``hop_length`` (no centring, no padding), periodic Hann
    window, power divided by the window's energy, ``log10(power + 1e-6)``.
    """

    def __init__(self, n_fft: int = 64, hop_length: int = 16):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        # Not persistent: the checkpoint's keys are the reference model's only.
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    def forward(self, emg: torch.Tensor) -> torch.Tensor:
        frames = emg.movedim(1, -1).unfold(-1, self.n_fft, self.hop_length)  # (N, *ch, F, n_fft)
        spectrum = torch.fft.rfft(frames * self.window, dim=-1)
        power = spectrum.abs().square() / self.window.square().sum()
        return torch.log10(power + 1e-6).movedim(-2, 1)


class SpectrogramNorm(nn.Module):
    """BatchNorm2d over the bands x electrodes channels of (T, N, bands, electrodes, freq)."""

    def __init__(self, channels: int):
        super().__init__()
        self.batch_norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, n, bands, electrodes, freq = x.shape
        # (N, channel = band * electrodes + electrode, freq, T): statistics over N, freq and T.
        y = x.movedim(0, -1).reshape(n, bands * electrodes, freq, t)
        y = self.batch_norm(y)
        return y.reshape(n, bands, electrodes, freq, t).movedim(-1, 0)


class RotationInvariantMLP(nn.Module):
    """(T, N, electrodes, freq) -> (T, N, mlp_features[-1]): one MLP on the electrode ring rolled
    by each offset, averaged over the offsets."""

    def __init__(self, in_features: int, mlp_features, offsets=(-1, 0, 1)):
        super().__init__()
        layers: list[nn.Module] = []
        for out_features in mlp_features:
            layers += [nn.Linear(in_features, out_features), nn.ReLU()]
            in_features = out_features
        self.mlp = nn.Sequential(*layers)
        self.offsets = tuple(offsets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rolled = torch.stack([x.roll(offset, dims=2) for offset in self.offsets], dim=2)
        # (T, N, offset, electrode * freq + bin)
        return self.mlp(rolled.flatten(start_dim=3)).mean(dim=2)


class MultiBandRotationInvariantMLP(nn.Module):
    """(T, N, bands, electrodes, freq) -> (T, N, bands, mlp_features[-1]), one MLP per band."""

    def __init__(self, in_features: int, mlp_features, num_bands: int = NUM_BANDS):
        super().__init__()
        self.mlps = nn.ModuleList(
            RotationInvariantMLP(in_features, mlp_features) for _ in range(num_bands)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([mlp(x[:, :, i]) for i, mlp in enumerate(self.mlps)], dim=2)


class TDSConv2dBlock(nn.Module):
    """(T, N, channels * width) -> (T - kernel_width + 1, N, channels * width).

    The features are channels x width (index channel * width + w); a (1, kernel_width) Conv2d
    over (N, channels, width, T), ReLU, residual on the last frames of the input, LayerNorm.
    """

    def __init__(self, channels: int, width: int, kernel_width: int):
        super().__init__()
        self.channels, self.width = channels, width
        self.conv2d = nn.Conv2d(channels, channels, kernel_size=(1, kernel_width))
        self.relu = nn.ReLU()
        self.layer_norm = nn.LayerNorm(channels * width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, n, features = x.shape
        y = x.movedim(0, -1).reshape(n, self.channels, self.width, t)
        y = self.relu(self.conv2d(y))
        t_out = y.shape[-1]
        y = y.reshape(n, features, t_out).movedim(-1, 0)
        return self.layer_norm(y + x[-t_out:])


class TDSFullyConnectedBlock(nn.Module):
    """(T, N, features) -> same: Linear, ReLU, Linear, residual, LayerNorm."""

    def __init__(self, features: int):
        super().__init__()
        self.fc_block = nn.Sequential(
            nn.Linear(features, features), nn.ReLU(), nn.Linear(features, features)
        )
        self.layer_norm = nn.LayerNorm(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(self.fc_block(x) + x)


class TDSConvEncoder(nn.Module):
    """A conv block then a fully connected block per entry of ``block_channels``."""

    def __init__(self, features: int, block_channels, kernel_width: int):
        super().__init__()
        blocks: list[nn.Module] = []
        for channels in block_channels:
            if features % channels:
                raise ValueError(f"{channels} channels do not divide {features} features")
            blocks += [
                TDSConv2dBlock(channels, features // channels, kernel_width),
                TDSFullyConnectedBlock(features),
            ]
        self.tds_conv_blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tds_conv_blocks(x)


class TDSConvCTC(nn.Module):
    """Raw EMG (N, samples, 2, 16) -> log-probabilities (N, frames - blocks * (kernel_width - 1),
    99), frames = 1 + (samples - 64) // 16."""

    def __init__(self, in_features=528, mlp_features=(384,), block_channels=(24, 24, 24, 24),
                 kernel_width=32):
        super().__init__()
        bins = in_features // ELECTRODES
        if bins * ELECTRODES != in_features:
            raise ValueError(f"in_features {in_features} is not a multiple of {ELECTRODES}")
        self.spectrogram = LogSpectrogram(n_fft=2 * (bins - 1), hop_length=16)
        features = NUM_BANDS * list(mlp_features)[-1]
        self.model = nn.Sequential(
            SpectrogramNorm(NUM_BANDS * ELECTRODES),
            MultiBandRotationInvariantMLP(in_features, list(mlp_features)),
            nn.Flatten(start_dim=2),  # band-major: index band * mlp_features[-1] + k
            TDSConvEncoder(features, list(block_channels), kernel_width),
            nn.Linear(features, NUM_CLASSES),
            nn.LogSoftmax(dim=-1),
        )

    def forward(self, emg: torch.Tensor) -> torch.Tensor:
        x = self.spectrogram(emg).movedim(1, 0)  # (T, N, bands, electrodes, freq)
        return self.model(x).movedim(0, 1)


def make_tds_torch(**hyperparameters) -> TDSConvCTC:
    """A TDSConvCTC with the reference's defaults updated by ``hyperparameters``."""
    unknown = set(hyperparameters) - set(DEFAULT_HYPERPARAMETERS)
    if unknown:
        raise TypeError(f"unknown hyperparameters: {sorted(unknown)}")
    return TDSConvCTC(**{**DEFAULT_HYPERPARAMETERS, **hyperparameters})


def randomize_batch_norm(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics and affine parameters for every BatchNorm of ``model``,
    so a converter that drops or mis-orders them is caught."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            with torch.no_grad():
                module.running_mean.copy_(0.5 + 0.3 * torch.randn(c, generator=generator))
                module.running_var.copy_(0.6 + torch.rand(c, generator=generator))
                module.weight.copy_(1.0 + 0.2 * torch.randn(c, generator=generator))
                module.bias.copy_(0.1 * torch.randn(c, generator=generator))
                module.num_batches_tracked.fill_(1234)


def save_lightning_ckpt(model: TDSConvCTC, path, hyper_parameters: dict | None = None) -> None:
    """Writes ``model`` as PyTorch Lightning would (tests/reference/lightning_ckpt.py: the whole
    envelope, omegaconf hyperparameters in Lightning's AttributeDict)."""
    from tests.reference import lightning_ckpt

    lightning_ckpt.save_lightning_ckpt(
        model, path, {**DEFAULT_HYPERPARAMETERS, **(hyper_parameters or {})}
    )


def save_safetensors(model: TDSConvCTC, path) -> None:
    """Writes ``model``'s weights as braindecode publishes them: the state dict with
    ``model.4.*`` renamed ``final_layer.*``."""
    from safetensors.torch import save_file

    tensors = {}
    for key, value in model.state_dict().items():
        if key.startswith("model.4."):
            key = "final_layer." + key[len("model.4."):]
        tensors[key] = value.detach().contiguous()
    save_file(tensors, str(path))
