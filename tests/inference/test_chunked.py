"""Whole sessions in chunks (emgtf.inference.chunked): equal to the one-shot forward pass for every
family whose layers read a bounded span, at chunk sizes from the receptive field to a whole
session; the chunk plan; unbounded models run whole or, by option, approximately; evaluate."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from emgtf import models
from emgtf.data import EMGSession
from emgtf.decoding import GreedyDecoder, ctc_greedy
from emgtf.errors import EmgtfError
from emgtf.inference.chunked import Chunking, SessionForward, plan_exact_chunks
from emgtf.inference.evaluation import evaluate_model
from emgtf.inference.runners import forward
from emgtf.models import EmissionRule
from tests.helpers import make_session_file

FINITE = {
    "tds_conv_ctc": dict(mlp_features=[16], block_channels=[4, 8], kernel_width=4),
    "tcn": dict(mlp_features=[16], hidden_size=8, num_layers=3),
    "conv_resnet": dict(mlp_features=[16], channels=8, num_blocks=2),
    "splashnet": dict(mlp_features=[16], block_channels=[4, 4], kernel_width=4),
    "splashnet_mini": dict(mlp_features=[16], block_channels=[4, 4], kernel_width=4),
}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """6 s of white noise, and its EMG."""
    path, _ = make_session_file(tmp_path_factory.mktemp("chunked") / "six.hdf5", num_samples=12345, seed=5)
    with EMGSession(path) as s:
        emg = s.read()
    return path, emg


def receptive_seconds(model) -> float:
    """The span one emission reads, in seconds: the smallest sensible chunk."""
    rule, reach = EmissionRule.from_model(model), SessionForward(model).reach
    return (rule.n_fft + (rule.lost_frames + reach.past + reach.future) * rule.hop_length) / rule.sample_rate


@pytest.mark.parametrize("family", sorted(FINITE))
def test_chunks_equal_the_one_shot_pass_for_every_finite_family(family, session):
    keras.utils.set_random_seed(3)
    path, emg = session
    model = models.build(family, **FINITE[family])
    one_shot = forward(model, emg[None])[0]
    with EMGSession(path) as s:
        smallest = receptive_seconds(model)
        for seconds, batch in ((smallest, 3), (1.7, 1), (1.7, 4), (100.0, 4)):
            chunked = SessionForward(model, Chunking(seconds=seconds, batch=batch))
            assert chunked.mode == ("step" if family.startswith("splashnet") else "overlap")
            plan = chunked.plan(len(s))
            assert (len(plan) == 1) == (seconds == 100.0)
            log_probs = chunked.log_probs(s)
            assert log_probs.shape == one_shot.shape
            assert np.abs(log_probs - one_shot).max() <= 1e-4, (seconds, batch)


# The course reports' filters of the raw signal before the spectrogram (unpadded, counted by the
# emission rule in input samples): a 100 Hz low-pass, then 2 kHz -> 1 kHz with anti-aliasing.
FILTERED = dict(lowpass_hz=100.0, lowpass_taps=65, downsample=2)


@pytest.mark.parametrize("family", ["tds_conv_ctc", "tcn", "splashnet"])
def test_chunks_of_a_model_that_filters_and_downsamples_equal_the_one_shot_pass(family, session):
    """Chunks start on a multiple of the emission stride in input samples, so the filters compute
    the same samples in every chunk as in the whole session: exact overlap chunks (the TCN's padded
    convolutions' context included), and SplashNet's incremental step runs the filters on its raw
    overlap."""
    keras.utils.set_random_seed(6)
    path, emg = session
    model = models.build(family, **FINITE[family], **FILTERED)
    rule = EmissionRule.from_model(model)
    assert rule.hop_length == 32 and rule.n_fft > 64  # the filters' window, in input samples
    one_shot = forward(model, emg[None])[0]
    with EMGSession(path) as s:
        for seconds, batch in ((receptive_seconds(model), 3), (1.7, 2)):
            chunked = SessionForward(model, Chunking(seconds=seconds, batch=batch))
            assert chunked.mode == ("step" if family == "splashnet" else "overlap")
            assert len(chunked.plan(len(s))) > 1
            log_probs = chunked.log_probs(s)
            assert log_probs.shape == one_shot.shape
            assert np.abs(log_probs - one_shot).max() <= 1e-4, (seconds, batch)


def test_a_model_with_minmax_normalization_runs_whole(session):
    """Min-max normalisation scales by the whole input's extremes: no chunk can give its result."""
    keras.utils.set_random_seed(7)
    path, emg = session
    model = models.build("tds_conv_ctc", **FINITE["tds_conv_ctc"], minmax=True)
    with EMGSession(path) as s:
        chunked = SessionForward(model, Chunking(seconds=1.0))
        assert chunked.mode == "whole" and len(chunked.plan(len(s))) == 1
        assert "minimum and maximum of the whole input" in chunked.describe()
        assert np.array_equal(chunked.log_probs(s), forward(model, emg[None])[0])


@pytest.mark.parametrize("family", ["tds_conv_ctc", "tcn", "splashnet"])
def test_a_session_shorter_than_one_chunk_runs_whole(family, tmp_path):
    keras.utils.set_random_seed(4)
    model = models.build(family, **FINITE[family])
    rule = EmissionRule.from_model(model)
    # From one emission to just under one 2 s chunk.
    for samples in (rule.samples_for(1), rule.samples_for(1) + 777, 4000):
        path, _ = make_session_file(tmp_path / f"short{samples}.hdf5", num_samples=samples, seed=samples)
        with EMGSession(path) as s:
            chunked = SessionForward(model, Chunking(seconds=2.0))
            assert len(chunked.plan(samples)) == 1
            log_probs = chunked.log_probs(s)
            one_shot = forward(model, s.read()[None])[0]
        assert log_probs.shape == (rule.emissions(samples), 99)
        np.testing.assert_allclose(log_probs, one_shot[: len(log_probs)], atol=1e-5)


@pytest.mark.parametrize("rule", [
    EmissionRule(n_fft=64, hop_length=16, lost_frames=124),
    EmissionRule(n_fft=64, hop_length=16, lost_frames=0),
    EmissionRule(n_fft=64, hop_length=16, lost_frames=3, subsampling=4),
])
@pytest.mark.parametrize("before, after", [(0, 0), (14, 0), (8, 8), (3, 11)])
def test_the_plan_keeps_each_emission_once_with_its_context(rule, before, after):
    for num_samples in (5000, 16017, 40000):
        total = rule.emissions(num_samples)
        for chunk in (1, 7, 50, 400):
            chunks = plan_exact_chunks(num_samples, rule, chunk_emissions=chunk, before=before, after=after)
            kept = []
            for c in chunks:
                computed = rule.emissions(c.stop - c.start)
                assert c.start % rule.stride == 0 and c.stop <= num_samples
                assert 0 <= c.keep_start < c.keep_stop <= computed
                assert c.first == c.start // rule.stride + c.keep_start
                # The context each kept emission reads, or the session's own edge.
                assert c.keep_start >= before or c.start == 0
                assert computed - c.keep_stop >= after or c.first + c.keep_stop - c.keep_start == total
                kept.extend(range(c.first, c.first + c.keep_stop - c.keep_start))
            assert kept == list(range(total))
            if len(chunks) > 1 and rule.subsampling == 1:  # one length: batched together
                assert len({c.stop - c.start for c in chunks}) == 1
                assert chunks[-1].stop - chunks[-1].start == rule.samples_for(chunk + before + after)


def test_unbounded_models_run_whole_unless_approximate_chunks_are_asked_for(session):
    keras.utils.set_random_seed(5)
    path, emg = session
    model = models.build("rnn", mlp_features=[16], hidden_size=8, num_layers=1)  # bidirectional
    one_shot = forward(model, emg[None])[0]
    with EMGSession(path) as s:
        whole = SessionForward(model, Chunking(seconds=1.0))
        assert whole.mode == "whole" and "bidirectional RNN" in whole.describe()
        assert np.array_equal(whole.log_probs(s), one_shot)
        bare = SessionForward(model, Chunking(seconds=1.0, approximate=True, context_seconds=0.0))
        near = SessionForward(model, Chunking(seconds=1.0, approximate=True, context_seconds=2.0))
        assert near.mode == "approximate" and len(near.plan(len(s))) == 7  # 1 s each
        bare, near = bare.log_probs(s), near.log_probs(s)
    assert bare.shape == near.shape == one_shot.shape
    # Not equal: the state starts at each chunk's edge; context on both sides brings it close.
    assert np.abs(near - one_shot).max() < np.abs(bare - one_shot).max()
    assert np.abs(bare - one_shot).max() > 1e-4


def test_evaluate_decodes_the_chunks_as_the_whole_session(tmp_path):
    from emgtf.synth import generate_session

    keras.utils.set_random_seed(6)
    info = generate_session(tmp_path, seed=2, minutes=0.2)
    for family in ("tds_conv_ctc", "splashnet"):
        model = models.build(family, **FINITE[family])
        whole = evaluate_model(model, [info.path], GreedyDecoder(), log=None, chunking=Chunking(seconds=None))
        chunked = evaluate_model(model, [info.path], GreedyDecoder(), log=None,
                                 chunking=Chunking(seconds=0.9, batch=2))
        assert chunked == whole
        with EMGSession(info.path) as s:
            one_shot = forward(model, s.read()[None])
        assert whole["sessions"][0]["prediction"] == ctc_greedy(one_shot, [one_shot.shape[1]])[0]


def test_bad_chunk_options_are_one_line():
    with pytest.raises(EmgtfError, match=r"^chunk.batch must be an integer >= 1, got 0$"):
        Chunking(batch=0)
    with pytest.raises(EmgtfError, match=r"^chunk.seconds must be > 0 or null"):
        Chunking(seconds=-1.0)
    with pytest.raises(EmgtfError, match=r"^chunk.overlap: unknown option \(known: approximate, batch"):
        Chunking.from_config({"overlap": 3})


@pytest.mark.slow
def test_peak_memory_of_a_long_evaluation_does_not_grow_with_the_session(tmp_path):
    """Meta-size TDS, emgtf.evaluate's defaults, each evaluation in its own process (its peak RSS,
    TensorFlow included): 1 and 8 minutes of signal peak within 150 MB of each other, under the
    issue's 1.5 GB bound for 47 minutes."""
    import sys

    from tests.helpers import REPO

    sys.path.insert(0, str(REPO / "scripts"))
    import bench_evaluate

    opts = {**bench_evaluate.DEFAULTS, "threads": 0}
    peaks = {}
    for minutes in (1.0, 8.0):
        folder = tmp_path / f"m{minutes:g}"
        folder.mkdir()
        session, checkpoint = bench_evaluate._write_inputs(str(folder), minutes, 0)
        result = bench_evaluate._measure("emgtf", session, checkpoint, opts)
        assert result["mode"].startswith("exact chunks of 10 s")
        peaks[minutes] = result["peak_rss_mb"]
    assert peaks[8.0] - peaks[1.0] < 150, peaks
    assert peaks[8.0] < 1500, peaks
