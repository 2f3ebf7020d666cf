"""1-D convolution layers: the residual block and the strided subsampling."""

from __future__ import annotations

import numpy as np

from emgtf.models.layers import ConvBlock1D, ConvSubsampling
from tests.helpers import run_layer_test


def features(batch=2, frames=21, width=12, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, frames, width)).astype("float32")


def test_conv_block_keeps_the_frames(tmp_path):
    run_layer_test(ConvBlock1D, {"filters": 12, "kernel_size": 3}, features(), tmp_path,
                   expected_output_shape=(2, 21, 12))


def test_conv_subsampling_divides_the_frames(tmp_path):
    for factor in (2, 4):
        layer = ConvSubsampling(factor=factor, filters=8)
        frames = int(layer.compute_output_length(21))
        run_layer_test(ConvSubsampling, {"factor": factor, "filters": 8}, features(), tmp_path,
                       expected_output_shape=(2, frames, 8))
        assert frames == -(-21 // factor)
