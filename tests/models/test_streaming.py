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
    with pytest.raises(EmgtfError, match="has no streaming step: .*only the TDS baseline .* and SplashNet") as error:
        state_layout(models.build(family, **hp))
    assert "\n" not in str(error.value)


TINY_SPLASHNET = dict(mlp_features=[16], block_channels=[4, 4], kernel_width=4)


def _stream_steps(model, layout, emg, hop_counts):
    """Steps ``model`` over ``emg`` in steps of ``hop_counts`` hops and a final one; returns the
    rows of each step (the final one last)."""
    state, outputs, start, hop = ops.convert_to_tensor(layout.initial_state()), [], 0, layout.hop_length
    for hops in [*hop_counts, 0]:
        state, log_probs = incremental_step(model, layout, state, emg[start : start + hops * hop],
                                            final=hops == 0)
        assert tuple(state.shape) == (layout.state_size,)
        outputs.append(ops.convert_to_numpy(log_probs))
        start += hops * hop
    return outputs


@pytest.mark.parametrize("share_hands", [True, False])
def test_splashnet_steps_give_the_whole_session_emissions(share_hands):
    keras.utils.set_random_seed(9)
    model = models.build("splashnet", share_hands=share_hands, **TINY_SPLASHNET)
    rule = EmissionRule.from_model(model)
    layout = state_layout(model)
    # The rolling norm never sees the 3 frames of the zero overlap, so only the TDS frames warm up.
    assert (layout.warmup_emissions, layout.lost_frames, layout.held_frames) == (6, 6, 125)
    names = dict(layout.parts)
    assert names["frames"] == (1,) and names["rolling_time_norm"] == (1 + 128 * 2 * 16 * 6,)
    if share_hands:  # one TDS stack on both hands, the hands folded into the batch
        assert names["tds_conv_1"] == (2, 3, 16)
    else:
        assert names["hand0_tds_conv_1"] == names["hand1_tds_conv_1"] == (3, 16)
    emg = random_emg(1, 4010, seed=9)[0]  # 250 hops: 247 frames
    offline = keras_runner(model).log_probs(emg)
    rows = _stream_steps(model, layout, emg, [1, 7, 2, 120, 20, 1, 99])
    # Nothing until the 125th frame of the signal (hop 128, in the 4th step: 130 hops, 127
    # frames), then all of them at once, then a row per hop.
    assert [len(r) for r in rows] == [0, 0, 0, 127, 20, 1, 99, 0]
    streamed = np.concatenate(rows)[layout.warmup_emissions :]
    assert streamed.shape == offline.shape == (rule.emissions(len(emg)), 99)
    np.testing.assert_allclose(streamed, offline, atol=1e-5)


def test_a_splashnet_stream_shorter_than_the_warmup_is_emitted_at_its_end():
    keras.utils.set_random_seed(10)
    model = models.build("splashnet", **TINY_SPLASHNET)
    layout = state_layout(model)
    emg = random_emg(1, 1500, seed=10)[0]  # 90 frames
    offline = keras_runner(model).log_probs(emg)
    rows = _stream_steps(model, layout, emg, [5, 80, 8])
    assert [len(r) for r in rows] == [0, 0, 0, 90]
    np.testing.assert_allclose(rows[-1][layout.warmup_emissions :], offline, atol=1e-5)


# --- the layers' declared reach -------------------------------------------------------------------


def test_every_emgtf_layer_declares_its_reach():
    import emgtf.models.layers as layers
    from emgtf.models.layers.base import Reach

    classes = [getattr(layers, name) for name in layers.__all__]
    classes = [c for c in classes if isinstance(c, type) and issubclass(c, keras.layers.Layer)]
    assert len(classes) >= 17
    for cls in classes:
        assert "temporal_reach" in vars(cls) or any("temporal_reach" in vars(b) for b in cls.__mro__[1:-1]
                                                    if b.__module__.startswith("emgtf")), cls.__name__
    assert layers.ConvBlock1D(8, 3, dilation=4, convs=2, causal=True).temporal_reach() == Reach(past=16)
    assert layers.ConvBlock1D(8, 5, convs=1).temporal_reach() == Reach(past=2, future=2)
    assert layers.TDSConvBlock(4, kernel_width=5).temporal_reach() == Reach(window=4)
    assert layers.RollingTimeNorm().temporal_reach().running_statistics


@pytest.mark.parametrize("family, hp, want", [
    # The TCN's receptive field before each frame: (kernel - 1) x (1 + 2 + 4) frames of padding.
    ("tcn", dict(mlp_features=[16], hidden_size=8, num_layers=3), dict(past=14, future=0, window=0)),
    ("conv_resnet", dict(mlp_features=[16], channels=8, num_blocks=2), dict(past=8, future=8, window=0)),
    ("tds_conv_ctc", dict(mlp_features=[16], block_channels=[4, 8], kernel_width=4),
     dict(past=0, future=0, window=6)),
])
def test_model_reach_composes_the_layers_along_the_graph(family, hp, want):
    from emgtf.models.streaming import model_reach

    model = models.build(family, **hp)
    reach = model_reach(model)
    assert {k: getattr(reach, k) for k in want} == want
    assert reach.finite and reach.window == EmissionRule.from_model(model).lost_frames


def test_a_layer_without_a_declared_reach_cannot_stream_but_is_chunked_whole():
    from emgtf.models.streaming import model_reach

    inputs = keras.Input((None, 8))
    model = keras.Model(inputs, keras.layers.Conv1D(8, 3, padding="same", name="plain_conv")(inputs))
    with pytest.raises(EmgtfError, match=r"layer 'plain_conv' \(Conv1D\): cannot tell how far in time"):
        model_reach(model)
    assert model_reach(model, streaming=False).unbounded_future
