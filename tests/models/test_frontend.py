"""The feature front end as a whole: the layers every model starts with, saved and loaded."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from emgtf.models.layers import LogSpectrogram, SpecAugment, SpectrogramNorm, TemporalCropResize
from tests.helpers import random_emg, save_and_load


def test_full_feature_stack_round_trip(tmp_path):
    inputs = keras.Input(shape=(None, 2, 16), name="emg")
    x = LogSpectrogram()(inputs)
    x = SpecAugment(seed=1)(x)
    x = TemporalCropResize(seed=2)(x)
    outputs = SpectrogramNorm()(x)
    model = keras.Model(inputs, outputs)
    assert model.count_params() == 128
    data = random_emg(2, 1000)
    model(data, training=True)
    loaded = save_and_load(model, tmp_path)
    np.testing.assert_array_equal(ops.convert_to_numpy(model(data)),
                                  ops.convert_to_numpy(loaded(data)))
    assert [type(layer).__name__ for layer in loaded.layers[1:]] == [
        "LogSpectrogram", "SpecAugment", "TemporalCropResize", "SpectrogramNorm"]
