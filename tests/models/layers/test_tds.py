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


def test_the_1d_convolution_of_the_conv_block_is_its_conv2d_with_the_same_gradients():
    """TDSConvBlock runs its Conv2D as a 1-D convolution outside TensorFlow (XLA computes that
    one several times faster); both give the same values and weight gradients."""
    import keras
    from keras import ops

    block = TDSConvBlock(channels=4, kernel_width=5)
    block.build((None, None, 32))
    block.conv.bias.assign(np.linspace(-1, 1, 4).astype("float32"))
    x = ops.reshape(features(batch=3, frames=40, seed=1), (3, 40, 4, 8))  # (batch, frames, channels, width)

    def conv_2d():
        return block.conv(ops.transpose(x, (0, 1, 3, 2)))

    np.testing.assert_allclose(ops.convert_to_numpy(block._conv_1d(x)), ops.convert_to_numpy(conv_2d()),
                               rtol=1e-5, atol=1e-5)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        weights = [block.conv.kernel, block.conv.bias]
        grads = []
        for path in (block._conv_1d, lambda _: conv_2d()):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.sin(path(x)))
            grads.append(tape.gradient(loss, weights))
        for a, b in zip(*grads):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
