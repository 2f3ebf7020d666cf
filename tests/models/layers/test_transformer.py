"""Transformer layers: positions, the padding mask, the encoder block."""

from __future__ import annotations

import numpy as np
from keras import ops

from emgtf.models.layers import FramePaddingMask, SinusoidalPositionEncoding, TransformerBlock
from tests.helpers import random_emg, run_layer_test


def features(batch=2, frames=10, width=16, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, frames, width)).astype("float32")


def test_sinusoidal_positions_add_a_fixed_signal(tmp_path):
    x = features()
    out = run_layer_test(SinusoidalPositionEncoding, {}, x, tmp_path, expected_output_shape=x.shape)
    # The same positions for every element of the batch.
    np.testing.assert_allclose(out[0] - x[0], out[1] - x[1], atol=1e-6)


def test_frame_padding_mask_marks_the_frames_with_signal(tmp_path):
    emg = random_emg(2, 64 + 16 * 19)
    emg[1, 64 + 16 * 9:] = 0.0  # the second element is padded after 10 frames
    mask = run_layer_test(FramePaddingMask, {}, emg, tmp_path, expected_output_shape=(2, 20))
    assert ops.convert_to_numpy(mask)[0].all()
    assert ops.convert_to_numpy(mask)[1, :10].all() and not ops.convert_to_numpy(mask)[1, 11:].any()


def test_transformer_block_keeps_the_shape(tmp_path):
    x = features()
    run_layer_test(TransformerBlock, {"num_heads": 2, "ff_size": 32}, x, tmp_path, expected_output_shape=x.shape)
    run_layer_test(TransformerBlock, {"num_heads": 2, "ff_size": 32, "conv_kernel": 3, "dropout": 0.1, "seed": 1},
                   x, tmp_path, expected_output_shape=x.shape)
