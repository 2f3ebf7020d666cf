"""The TDS blocks of Meta's baseline: shapes, cropping, and the layer contract."""

from __future__ import annotations

import numpy as np

from emgtf.models.layers import TDSConvBlock, TDSFullyConnectedBlock
from tests.helpers import run_layer_test


def features(batch=2, frames=20, width=32, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, frames, width)).astype("float32")


def test_tds_conv_block_crops_kernel_width_minus_one_frames(tmp_path):
    block = {"channels": 4, "kernel_width": 3}
    run_layer_test(TDSConvBlock, block, features(), tmp_path, expected_output_shape=(2, 18, 32))
    assert TDSConvBlock(**block).compute_output_length(20) == 18
    assert int(TDSConvBlock(**block).compute_output_length(np.int64(1))) == 0


def test_tds_conv_block_with_dropout_and_batch_norm(tmp_path):
    block = {"channels": 4, "kernel_width": 3, "dropout": 0.2, "batch_norm": True, "seed": 1}
    run_layer_test(TDSConvBlock, block, features(), tmp_path, expected_output_shape=(2, 18, 32))


def test_tds_fully_connected_block_keeps_the_shape(tmp_path):
    run_layer_test(TDSFullyConnectedBlock, {}, features(), tmp_path, expected_output_shape=(2, 20, 32))
    run_layer_test(TDSFullyConnectedBlock, {"dropout": 0.1, "batch_norm": True, "seed": 2}, features(),
                   tmp_path, expected_output_shape=(2, 20, 32))
