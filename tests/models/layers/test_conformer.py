"""ConformerBlock: serialisation, rotary positions against numpy, causality, padding."""

from __future__ import annotations

import numpy as np
from keras import ops

from emgtf.models.layers import ConformerBlock
from emgtf.models.layers.conformer import rotary
from tests.helpers import run_layer_test


def features(batch=2, frames=12, width=16, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, frames, width)).astype("float32")


def test_conformer_block_round_trips_and_trains(tmp_path):
    x = features()
    causal = {"num_heads": 2, "ff_size": 32, "conv_kernel": 3, "causal": True, "dropout": 0.1,
              "batch_norm": True, "seed": 1}
    run_layer_test(ConformerBlock, causal, x, tmp_path, expected_output_shape=x.shape)
    mask = np.ones((2, 12), "float32")
    mask[1, 9:] = 0.0
    run_layer_test(ConformerBlock, {"num_heads": 2, "ff_size": 32, "conv_kernel": 5}, x, tmp_path,
                   call_kwargs={"padding_mask": mask}, expected_output_shape=x.shape)


def test_rotary_positions_match_numpy_and_depend_on_distance_only():
    x = features(1, 7, 8).reshape(1, 7, 2, 4)
    found = ops.convert_to_numpy(rotary(x))
    half, t = 2, np.arange(7)[:, None]
    angles = t * 10000.0 ** (-np.arange(half) / half)
    cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]
    expected = np.concatenate([x[0, ..., :half] * cos - x[0, ..., half:] * sin,
                               x[0, ..., :half] * sin + x[0, ..., half:] * cos], axis=-1)
    np.testing.assert_allclose(found[0], expected, atol=1e-5)
    # The same query and key vectors at every frame: the score depends on the distance alone.
    q = np.tile(features(1, 1, 8, seed=1), (1, 9, 1)).reshape(1, 9, 1, 8)
    k = np.tile(features(1, 1, 8, seed=2), (1, 9, 1)).reshape(1, 9, 1, 8)
    scores = np.einsum("qd,kd->qk", ops.convert_to_numpy(rotary(q))[0, :, 0], ops.convert_to_numpy(rotary(k))[0, :, 0])
    np.testing.assert_allclose(scores[2, 0], scores[7, 5], atol=1e-4)
    np.testing.assert_allclose(scores[0, 3], scores[4, 7], atol=1e-4)


def test_causal_block_never_reads_later_frames_and_the_full_one_does():
    x = features(1, 20)
    later = x.copy()
    later[:, 12:] = features(1, 8, seed=9)  # (a constant shift would vanish in the LayerNorms)
    for causal in (True, False):
        block = ConformerBlock(num_heads=2, ff_size=32, conv_kernel=5, dropout=0.0, causal=causal)
        a, b = ops.convert_to_numpy(block(x)), ops.convert_to_numpy(block(later))
        early = np.abs(a[:, :12] - b[:, :12]).max()
        assert (early < 1e-6) if causal else (early > 1e-3), (causal, early)
        assert np.abs(a[:, 12:] - b[:, 12:]).max() > 1e-3


def test_padding_mask_makes_padding_invisible():
    block = ConformerBlock(num_heads=2, ff_size=32, conv_kernel=5, dropout=0.0)
    x = features(1, 10)
    padded = np.concatenate([x, features(1, 6, seed=5)], axis=1)
    mask = np.concatenate([np.ones((1, 10)), np.zeros((1, 6))], axis=1).astype("float32")
    alone = ops.convert_to_numpy(block(x))
    masked = ops.convert_to_numpy(block(padded, padding_mask=mask))
    np.testing.assert_allclose(masked[:, :10], alone, atol=1e-5)
