"""FoldBands, UnfoldBands, SplitBands: the hands between the feature and batch axes, or apart."""

from __future__ import annotations

import numpy as np

from emgtf.models.layers import FoldBands, SplitBands, UnfoldBands
from tests.helpers import run_layer_test


def features(batch=3, frames=5, width=8, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, frames, width)).astype("float32")


def test_fold_puts_each_hand_in_its_own_batch_element_and_unfold_undoes_it(tmp_path):
    x = features()
    folded = run_layer_test(FoldBands, {}, x, tmp_path, expected_output_shape=(6, 5, 4))
    np.testing.assert_array_equal(folded[1], x[0, :, 4:])  # element 2b + hand
    np.testing.assert_array_equal(folded[4], x[2, :, :4])
    unfolded = run_layer_test(UnfoldBands, {}, folded, tmp_path, expected_output_shape=x.shape)
    np.testing.assert_array_equal(unfolded, x)


def test_split_gives_each_hands_half_of_the_features(tmp_path):
    x = features()
    left, right = run_layer_test(SplitBands, {}, x, tmp_path)
    np.testing.assert_array_equal(left, x[..., :4])
    np.testing.assert_array_equal(right, x[..., 4:])
