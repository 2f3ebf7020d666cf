"""Keras layers of emgtf's models, each serialisable (``get_config``) and ``keras.ops``-only.

The raw EMG window goes into the model; the feature layers are its first layers:

    [MinMaxNormalization] -> [LowPassFilter] -> [Downsample] -> LogSpectrogram -> [RandomTimeCrop]
    -> [SpecAugment] -> [TemporalCropResize] -> SpectrogramNorm -> [ElectrodeSubset] -> family layers

- ``spectrogram``: ``LogSpectrogram``, ``frames_for_samples``, ``SpectrumBands``;
- ``augmentation``: ``SpecAugment``, ``TemporalCropResize``;
- ``preprocessing``: ``MinMaxNormalization``, ``LowPassFilter``,
  ``Downsample``, ``ElectrodeSubset``, ``RandomTimeCrop`` (the course reports' preprocessing);
- ``normalization``: ``SpectrogramNorm``, ``RollingTimeNorm``;
- ``rotation_mlp``: ``RotationInvariantMLP``;
- ``tds``: ``TDSConvBlock``, ``TDSFullyConnectedBlock``;
- ``bands``: ``FoldBands``, ``UnfoldBands`` (one encoder per hand, shared),
  ``SplitBands`` (one encoder per hand, each its own);
- ``conv``: ``ConvBlock1D``, ``ConvSubsampling``;
- ``conformer``: ``ConformerBlock`` (rotary positions, causal option);
- ``transformer``: ``SinusoidalPositionEncoding``, ``FramePaddingMask``,
  ``TransformerBlock``.
"""

from emgtf.models.layers.augmentation import SpecAugment, TemporalCropResize
from emgtf.models.layers.bands import FoldBands, SplitBands, UnfoldBands
from emgtf.models.layers.base import nonnegative
from emgtf.models.layers.conformer import ConformerBlock
from emgtf.models.layers.conv import ConvBlock1D, ConvSubsampling
from emgtf.models.layers.normalization import RollingTimeNorm, SpectrogramNorm
from emgtf.models.layers.preprocessing import (
    Downsample,
    ElectrodeSubset,
    LowPassFilter,
    MinMaxNormalization,
    RandomTimeCrop,
)
from emgtf.models.layers.rotation_mlp import RotationInvariantMLP
from emgtf.models.layers.spectrogram import (
    POWER_FLOOR,
    LogSpectrogram,
    SpectrumBands,
    frames_for_samples,
)
from emgtf.models.layers.tds import TDSConvBlock, TDSFullyConnectedBlock
from emgtf.models.layers.transformer import (
    FramePaddingMask,
    SinusoidalPositionEncoding,
    TransformerBlock,
)

__all__ = [
    "ConformerBlock",
    "POWER_FLOOR",
    "ConvBlock1D",
    "ConvSubsampling",
    "Downsample",
    "ElectrodeSubset",
    "FoldBands",
    "FramePaddingMask",
    "LogSpectrogram",
    "LowPassFilter",
    "MinMaxNormalization",
    "RandomTimeCrop",
    "RollingTimeNorm",
    "RotationInvariantMLP",
    "SinusoidalPositionEncoding",
    "SpecAugment",
    "SpectrogramNorm",
    "SpectrumBands",
    "SplitBands",
    "TDSConvBlock",
    "TDSFullyConnectedBlock",
    "TemporalCropResize",
    "TransformerBlock",
    "UnfoldBands",
    "frames_for_samples",
    "nonnegative",
]
