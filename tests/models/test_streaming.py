"""The incremental step itself (keras.ops, run eagerly here): a stream of steps of different hop
counts against the whole-session emissions; its layout; models that have none."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from emgtf import models
from emgtf.errors import EmgtfError
from emgtf.inference.runners import keras_runner
from emgtf.models.emission import EmissionRule
from emgtf.models.streaming import incremental_step, state_layout
from tests.helpers import random_emg


def test_steps_of_any_hop_count_give_the_whole_session_emissions():
    keras.utils.set_random_seed(8)
    model = models.build("tds_conv_ctc", mlp_features=[16], block_channels=[4, 8], kernel_width=4)
    rule = EmissionRule.from_model(model)
    layout = state_layout(model)
    hop = layout.hop_length
    assert layout.warmup_emissions == (rule.n_fft - hop) // hop + rule.lost_frames
    assert layout.span_samples == rule.n_fft - hop + rule.lost_frames * hop
    emg = random_emg(1, 1610, seed=8)[0]  # 100 hops and 10 samples no emission reads
    offline = keras_runner(model).log_probs(emg)
    state, outputs, start = ops.convert_to_tensor(layout.initial_state()), [], 0
    for hops in [1, 7, 2, 40, 1, 49]:
        state, log_probs = incremental_step(model, layout, state, emg[start : start + hops * hop])
        assert tuple(state.shape) == (layout.state_size,)
        assert tuple(log_probs.shape) == (hops, 99)
        outputs.append(ops.convert_to_numpy(log_probs))
        start += hops * hop
    streamed = np.concatenate(outputs)[layout.warmup_emissions :]
    assert streamed.shape == offline.shape
    np.testing.assert_allclose(streamed, offline, atol=1e-5)


@pytest.mark.parametrize("family, hp", [
    ("tcn", dict(mlp_features=[16], hidden_size=8, num_layers=2)),
    ("rnn", dict(mlp_features=[16], hidden_size=8, num_layers=1, bidirectional=False)),
])
def test_models_without_a_step_are_refused_in_one_line(family, hp):
    with pytest.raises(EmgtfError, match="has no streaming step: .*only the TDS baseline") as error:
        state_layout(models.build(family, **hp))
    assert "\n" not in str(error.value)
