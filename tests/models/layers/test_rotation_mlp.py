"""RotationInvariantMLP: Meta's per-band front end, against a numpy reference."""

from __future__ import annotations

import numpy as np
from keras import ops

from emgtf.models.layers import RotationInvariantMLP
from tests.helpers import random_spectrogram, run_layer_test


def test_rotation_mlp_layer_contract(tmp_path):
    x = random_spectrogram(batch=2, frames=6)
    run_layer_test(RotationInvariantMLP, {"features": [8, 4]}, x, tmp_path,
                   expected_output_shape=(2, 6, 8), expected_trainable_weights=4)


def test_rotation_mlp_matches_a_numpy_reference():
    layer = RotationInvariantMLP(features=[8, 4], offsets=(-1, 0, 1))
    x = np.random.default_rng(0).normal(size=(2, 5, 2, 16, 3)).astype("float32")
    out = ops.convert_to_numpy(layer(x))  # 10 frames, more than features[0]: permuted kernels
    assert out.shape == (2, 5, 8)
    # Fewer (a streaming step's few frames): rolled copies of the input, the same numbers.
    few = ops.convert_to_numpy(layer(x[:1, :3]))
    np.testing.assert_allclose(few, out[:1, :3], rtol=1e-5, atol=1e-6)
    # Reference: each band's MLP on the three rolled copies, averaged (numpy, independent).
    k = [ops.convert_to_numpy(w) for w in layer.kernels]
    b = [ops.convert_to_numpy(w) for w in layer.biases]
    expected = []
    for band in range(2):
        copies = []
        for o in (-1, 0, 1):
            h = np.roll(x[:, :, band], o, axis=2).reshape(2, 5, 48)
            for kernel, bias in zip(k, b):
                h = np.maximum(h @ kernel[band] + bias[band], 0)
            copies.append(h)
        expected.append(np.mean(copies, axis=0))
    np.testing.assert_allclose(out, np.concatenate(expected, axis=-1), rtol=1e-4, atol=1e-5)
