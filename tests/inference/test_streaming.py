"""Streaming: StreamingDecoder's emissions against the whole-session pass, incremental greedy and
beam decoding against the offline decoders, bounded state, refused models, SplashNet's rolling
norm through the incremental step, and python -m emgtf.stream end to end on a generated session."""

from __future__ import annotations

import shutil

import keras
import numpy as np
import pytest

from emgtf import models
from emgtf.cli import run
from emgtf.charset import ENTER
from emgtf.cli.stream import main
from emgtf.data import EMGSession
from emgtf.decoding import BeamSearchDecoder, ctc_greedy, make_decoder
from emgtf.errors import EmgtfError
from emgtf.inference.replay import replay
from emgtf.inference.runners import keras_runner, load_runner
from emgtf.inference.steps import MAX_STEP_HOPS
from emgtf.inference.streaming import StreamingDecoder
from emgtf.models.streaming import model_reach
from emgtf.inference.transcription import transcribe
from emgtf.synth import generate_session
from tests.helpers import random_emg

TINY_TDS = dict(mlp_features=[16], block_channels=[4, 8], kernel_width=4)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A generated 15 s session and a tiny TDS checkpoint."""
    root = tmp_path_factory.mktemp("stream")
    keras.utils.set_random_seed(3)
    info = generate_session(root, seed=3, minutes=0.25)
    tds = models.build("tds_conv_ctc", **TINY_TDS)
    tds.save(root / "tds.keras")
    with EMGSession(info.path) as session:
        emg = session.read()
    return {"session": info.path, "ckpt": root / "tds.keras", "model": tds, "emg": emg, "root": root}


def stream(streamer, emg, chunk):
    """Pushes ``emg`` in chunks of ``chunk`` samples; returns (all emissions, updates, largest
    buffer seen between pushes)."""
    streamer.reset()
    parts, updates, largest = [], [], 0
    for start in range(0, len(emg), chunk):
        update = streamer.push(emg[start : start + chunk])
        parts.append(update.log_probs)
        updates.append(update)
        largest = max(largest, streamer.buffered_samples)
    final = streamer.finish()
    parts.append(final.log_probs)
    updates.append(final)
    return np.concatenate(parts), updates, largest


def assert_same_best_class(streamed, offline, margin=1e-4):
    top2 = np.sort(offline, axis=-1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > margin
    assert clear.mean() > 0.9  # the check covers most frames
    np.testing.assert_array_equal(streamed.argmax(-1)[clear], offline.argmax(-1)[clear])


def test_tds_streamed_emissions_equal_the_whole_session(setup):
    offline = keras_runner(setup["model"]).log_probs(setup["emg"])
    streamer = StreamingDecoder.load(setup["ckpt"], step="keras")
    rule = streamer.rule
    # The kept samples: what the next emission's window of lost_frames + 1 frames needs.
    assert streamer.max_buffer_samples == rule.lost_frames * rule.hop_length + rule.n_fft - 1
    for chunk in (80, 37, 1000):
        streamed, updates, largest = stream(streamer, setup["emg"], chunk)
        assert streamed.shape == offline.shape
        np.testing.assert_allclose(streamed, offline, atol=1e-5)
        assert largest <= streamer.max_buffer_samples
        # The untrained model has near-ties that rounding on another CPU may flip, so the best
        # class must agree wherever offline's margin is clear of the 1e-5 tolerance.
        assert_same_best_class(streamed, offline)
        # Greedy text is that of the streamed emissions, and never retracts a key.
        expected = ctc_greedy(streamed[None], [len(streamed)])[0]
        assert updates[-1].committed == expected
        texts = [u.text for u in updates]
        assert all(expected.startswith(t) for t in texts)


def test_tds_streams_exactly_from_one_sample_to_one_second_chunks(setup):
    emg = setup["emg"][:4000]  # 2 s: chunks of 1 sample are 4,000 pushes
    offline = keras_runner(setup["model"]).log_probs(emg)
    streamer = StreamingDecoder.from_model(setup["model"])
    assert streamer.step is not None  # the TDS baseline streams through its incremental step
    hop = streamer.rule.hop_length
    for chunk in (1, 37, 80, 2000, 333):
        streamed, updates, largest = stream(streamer, emg, chunk)
        np.testing.assert_allclose(streamed, offline, atol=1e-5)
        assert largest <= streamer.max_buffer_samples
        assert_same_best_class(streamed, offline)
        assert updates[-1].committed == ctc_greedy(streamed[None], [len(streamed)])[0]
        # Each spectrogram frame computed once: one step run per push that completes a hop (a
        # run per MAX_STEP_HOPS of them).
        assert streamer.frames_computed == len(emg) // hop
        ends = np.minimum(np.arange(chunk, len(emg) + chunk, chunk), len(emg))
        new_hops = np.diff(ends // hop, prepend=0)
        assert streamer.model_runs == np.sum(-(-new_hops // MAX_STEP_HOPS))


def test_a_tflite_export_streams_through_its_step(setup, capsys):
    """The export's float32 step (its fixed 80-sample chunks) gives the Keras checkpoint's
    emissions, whatever the push size; a partial last chunk is zero-padded at finish()."""
    from emgtf.export import export_model
    from emgtf.inference.steps import TFLiteStep

    folder = setup["root"] / "tflite"
    export_model(setup["model"], folder, "tflite", tflite_int8="none", verify=False)
    emg = setup["emg"][:6045]  # 75 chunks, then 2 hops and 13 samples: a partial last chunk
    offline = keras_runner(setup["model"]).log_probs(emg)
    for path, chunks, threads in ((folder, (80, 37, 1000), None), (folder / "model.tflite", (80,), 1)):
        streamer = StreamingDecoder.load(path, threads=threads)
        assert isinstance(streamer.step, TFLiteStep)
        assert "TFLite step model.tflite, chunks of 80 samples" in streamer.describe()
        for chunk in chunks:
            streamed, updates, largest = stream(streamer, emg, chunk)
            assert streamed.shape == offline.shape
            np.testing.assert_allclose(streamed, offline, atol=1e-4)
            assert largest <= streamer.max_buffer_samples
            assert streamer.model_runs == -(-len(emg) // 80)  # one step per chunk, the last padded
            # The greedy text of the same emissions (never compared across numerics: near-ties).
            assert updates[-1].committed == ctc_greedy(streamed[None], [len(streamed)])[0]
    with pytest.raises(EmgtfError, match="model.tflite: a .tflite file streams through its step only"):
        StreamingDecoder.load(folder / "model.tflite", incremental=False)
    code = run(main, "emgtf.stream", ["--model", str(folder), str(setup["session"])])
    out, err = capsys.readouterr()
    assert code == 0 and "TFLite step model.tflite, chunks of 80 samples" in err, err
    assert "CER: " in out


def test_the_incremental_step_computes_each_hop_once_not_the_receptive_field(setup):
    emg = setup["emg"][:6000]
    incremental = StreamingDecoder.from_model(setup["model"])
    windowed = StreamingDecoder.from_model(setup["model"], incremental=False)
    assert windowed.step is None
    assert "incremental step" in incremental.describe() and "windowed" in windowed.describe()
    fast, _, _ = stream(incremental, emg, 80)
    slow, _, _ = stream(windowed, emg, 80)
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    # 5 new frames per 80-sample push, against the receptive field's frames again on each push.
    pushes, rule = len(emg) // 80, incremental.rule
    assert incremental.frames_computed == 5 * pushes
    assert windowed.frames_computed > 5 * pushes + (pushes - rule.lost_frames) * rule.lost_frames


def test_state_stays_bounded_over_a_long_stream():
    model = models.build("tds_conv_ctc", **TINY_TDS)
    streamer = StreamingDecoder.from_model(model, min_step_samples=160)
    emg = random_emg(1, 2000 * 40, seed=5)[0]  # 40 s as 1000 chunks of 80 samples
    assert streamer.step is not None
    largest, state_shapes = 0, set()
    for start in range(0, len(emg), 80):
        streamer.push(emg[start : start + 80])
        largest = max(largest, streamer.buffered_samples)
        state_shapes.add(tuple(streamer._state.shape))
    assert largest <= streamer.max_buffer_samples
    assert state_shapes == {(streamer.step.layout.state_size,)}  # one fixed-size vector
    assert streamer.model_runs <= 500  # the minimum step batches two chunks per model run
    assert streamer.frames_computed == len(emg) // streamer.rule.hop_length
    assert streamer.finish().emissions == streamer.rule.emissions(len(emg))


def test_padded_convolutions_stream_exactly():
    emg = random_emg(1, 9000, seed=2)[0]
    for family, hp in (
        ("tcn", dict(mlp_features=[16], hidden_size=8, num_layers=3)),  # causal: past padding
        ("conv_resnet", dict(mlp_features=[16], channels=8, num_blocks=2)),  # "same": both sides
    ):
        model = models.build(family, **hp)
        reach = model_reach(model)
        assert reach.past > 0 and not reach.unbounded_past
        assert (reach.future > 0) == (family == "conv_resnet")
        streamer = StreamingDecoder.from_model(model)
        streamed, _, largest = stream(streamer, emg, 100)
        np.testing.assert_allclose(streamed, keras_runner(model).log_probs(emg), atol=1e-5)
        assert largest <= streamer.max_buffer_samples


def test_a_unidirectional_rnn_streams_windowed():
    model = models.build("rnn", mlp_features=[16], hidden_size=8, num_layers=1, bidirectional=False)
    assert model_reach(model).unbounded_past
    emg = random_emg(1, 16000, seed=4)[0]
    offline = keras_runner(model).log_probs(emg)
    streamer = StreamingDecoder.from_model(model, context_seconds=2.0)
    streamed, updates, largest = stream(streamer, emg, 400)
    assert largest <= streamer.max_buffer_samples
    # Approximate: the state rebuilt from 2 s of context (README: the measured deviation).
    deviation = np.abs(streamed - offline).max()
    assert deviation < 1e-3, deviation
    assert_same_best_class(streamed, offline, margin=2e-3)
    assert updates[-1].committed == ctc_greedy(streamed[None], [len(streamed)])[0]


def test_a_conformer_streams_only_when_causal():
    tiny = dict(mlp_features=[16], d_model=16, num_heads=2, num_layers=1, ff_size=16, conv_kernel=3)
    with pytest.raises(EmgtfError, match=r"^model 'conformer': layer 'conformer_block_1' \(ConformerBlock\) "
                       r"attends over the whole input .*model.causal=true\)$") as caught:
        model_reach(models.build("conformer", **tiny))
    assert "\n" not in str(caught.value)
    reach = model_reach(models.build("conformer", causal=True, **tiny))
    assert reach.unbounded_past and reach.future == 0  # causal subsampling: no future padding


# --- SplashNet: a rolling norm through the incremental step ---------------------------------------

TINY_SPLASHNET = dict(mlp_features=[16], block_channels=[4, 4], kernel_width=4)


@pytest.fixture(scope="module")
def splash(tmp_path_factory):
    """A tiny SplashNet checkpoint (6 bands, rolling norm, hands shared) and 2 s of signal."""
    root = tmp_path_factory.mktemp("splash")
    keras.utils.set_random_seed(11)
    model = models.build("splashnet", **TINY_SPLASHNET)
    model.save(root / "splash.keras")
    return {"ckpt": root / "splash.keras", "model": model, "emg": random_emg(1, 4000, seed=11)[0]}


def assert_emitted_once_warmed_up(updates, rule, chunk, total, warmup=125):
    """Each push's emissions: none before the signal's ``warmup``-th frame, then every emission
    its samples allow (the warm-up delays the first emissions only)."""
    for received, update in zip(np.minimum(np.arange(1, len(updates)) * chunk, total), updates):
        expected = rule.emissions(int(received)) if rule.frames(int(received)) >= warmup else 0
        assert update.emissions == expected, (received, update.emissions, expected)


def test_a_checkpoint_streams_through_its_tflite_step_built_once(setup, tmp_path):
    from emgtf.export.step_cache import load_streamer
    from emgtf.inference.steps import CompiledStep, TFLiteStep

    checkpoint = tmp_path / "tds.keras"
    shutil.copy(setup["ckpt"], checkpoint)
    streamer = load_streamer(checkpoint)
    assert isinstance(streamer.step, TFLiteStep) and streamer.step.unit_samples == 80
    (cached,) = tmp_path.glob("tds.keras.step80-*.tflite")
    assert streamer.describe().startswith(f"TFLite step {cached.name}")
    offline = keras_runner(setup["model"]).log_probs(setup["emg"])
    streamed, _, largest = stream(streamer, setup["emg"], 80)
    # LiteRT's kernels (XNNPACK) round differently from Keras's: within the TFLite step's 1e-4.
    np.testing.assert_allclose(streamed, offline, atol=1e-4)
    assert largest <= streamer.max_buffer_samples
    # Reused while the checkpoint's bytes are the same; another checkpoint gets its own.
    built = cached.stat().st_mtime_ns
    assert load_streamer(checkpoint).step.path == cached and cached.stat().st_mtime_ns == built
    assert isinstance(load_streamer(checkpoint, step="keras").step, CompiledStep)
    other = models.build("tds_conv_ctc", **TINY_TDS)
    other.save(checkpoint)
    assert load_streamer(checkpoint).step.path != cached
    assert len(list(tmp_path.glob("tds.keras.step80-*.tflite"))) == 2
    with pytest.raises(EmgtfError, match="step must be auto or keras, got 'fast'"):
        load_streamer(checkpoint, step="fast")


def test_splashnet_streams_exactly_from_a_checkpoint(splash):
    from emgtf.export.step_cache import load_streamer

    streamer = load_streamer(splash["ckpt"])
    assert streamer.step is not None and streamer.step.layout.held_frames == 125
    # No fixed-shape (TFLite) step for a rolling norm: the Keras step, saying why.
    assert streamer.describe().startswith("Keras incremental step (no TFLite step: its rolling norm")
    assert streamer.reach.describe() == "exact, running statistics from the stream's start"
    offline = keras_runner(splash["model"]).log_probs(splash["emg"])
    for chunk in (80, 333, 2000):
        streamed, updates, largest = stream(streamer, splash["emg"], chunk)
        assert streamed.shape == offline.shape
        np.testing.assert_allclose(streamed, offline, atol=1e-5)
        assert largest <= streamer.max_buffer_samples
        assert tuple(streamer._state.shape) == (streamer.step.layout.state_size,)
        assert_same_best_class(streamed, offline)
        assert updates[-1].committed == ctc_greedy(streamed[None], [len(streamed)])[0]
        assert_emitted_once_warmed_up(updates, streamer.rule, chunk, len(splash["emg"]))


def test_splashnet_streams_one_sample_chunks_and_streams_shorter_than_the_warmup(splash):
    streamer = StreamingDecoder.from_model(splash["model"])
    emg = splash["emg"][:2100]  # the warm-up ends at sample 2048
    streamed, updates, _ = stream(streamer, emg, 1)
    np.testing.assert_allclose(streamed, keras_runner(splash["model"]).log_probs(emg), atol=1e-5)
    assert_emitted_once_warmed_up(updates, streamer.rule, 1, len(emg))
    short = splash["emg"][:1000]  # 59 frames: all emitted by finish()
    streamed, updates, _ = stream(streamer, short, 80)
    assert [u.emissions for u in updates[:-1]] == [0] * (len(updates) - 1)
    np.testing.assert_allclose(streamed, keras_runner(splash["model"]).log_probs(short), atol=1e-5)
    assert len(streamed) == streamer.rule.emissions(len(short)) == 59 - 6


def test_the_warmup_adds_no_latency_when_the_first_emission_reads_125_frames():
    # SplashNet's four 32-frame kernels (124 frames lost) read the warm-up's 125 frames for
    # its first emission anyway; two 63-frame kernels here do the same.
    keras.utils.set_random_seed(12)
    model = models.build("splashnet", mlp_features=[8], block_channels=[4, 4], kernel_width=63)
    streamer = StreamingDecoder.from_model(model)
    emg = random_emg(1, 2400, seed=12)[0]
    streamed, updates, _ = stream(streamer, emg, 80)
    first = next(i for i, u in enumerate(updates) if u.emissions)
    assert streamer.rule.lost_frames == 124 and (first + 1) * 80 >= streamer.rule.samples_for(1) > first * 80
    np.testing.assert_allclose(streamed, keras_runner(model).log_probs(emg), atol=1e-5)


@pytest.mark.slow
def test_full_size_splashnet_mini_streams_exactly():
    keras.utils.set_random_seed(13)
    model = models.build("splashnet_mini")
    emg = random_emg(1, 3000, seed=13)[0]
    streamer = StreamingDecoder.from_model(model)
    streamed, updates, _ = stream(streamer, emg, 80)
    np.testing.assert_allclose(streamed, keras_runner(model).log_probs(emg), atol=1e-5)
    assert_emitted_once_warmed_up(updates, streamer.rule, 80, len(emg))


def test_splashnet_without_the_step_is_refused_in_one_line(splash):
    with pytest.raises(EmgtfError, match="statistics from the start of the stream.*incremental=False"):
        StreamingDecoder.from_model(splash["model"], incremental=False)
    # A runner without a step, as a SavedModel or ONNX export of it gives (load()).
    with pytest.raises(EmgtfError, match="SavedModel or ONNX export has no Keras layers") as error:
        StreamingDecoder(keras_runner(splash["model"]), model_reach(splash["model"]))
    assert "\n" not in str(error.value) and "stream its .keras checkpoint" in str(error.value)


def test_models_that_cannot_stream_are_one_line_errors(setup, tmp_path, capsys):
    birnn = models.build("rnn", mlp_features=[16], hidden_size=8, num_layers=1)
    with pytest.raises(EmgtfError, match="bidirectional RNN, so every emission depends on the rest"):
        StreamingDecoder.from_model(birnn)
    transformer = models.build("transformer", mlp_features=[16], d_model=16, num_heads=2, num_layers=1,
                               ff_size=16)
    with pytest.raises(EmgtfError, match="full self-attention"):
        StreamingDecoder.from_model(transformer)
    birnn.save(tmp_path / "birnn.keras")
    code = run(main, "emgtf.stream", ["--model", str(tmp_path / "birnn.keras"), str(setup["session"])])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("emgtf.stream: error: model 'rnn': layer") and "emgtf.transcribe" in err
    streamer = StreamingDecoder.from_model(setup["model"])
    with pytest.raises(EmgtfError, match=r"shape \(samples, 2, 16\)"):
        streamer.push(np.zeros((10, 16)))


# --- incremental beam search ---------------------------------------------------------------------


def _peaked(rng, frames=300):
    """Emissions of a random key sequence: mostly blank, a peaked key now and then, noise."""
    labels = np.where(rng.random(frames) < 0.25, rng.integers(0, 98, frames), 98)
    lp = rng.normal(0, 1.0, (frames, 99))
    lp[np.arange(frames), labels] += 8.0
    return lp - np.logaddexp.reduce(lp, axis=1, keepdims=True)


def _chunked_beam(decoder, lp, rng, max_pending_keys=None):
    state = decoder.start(max_pending_keys)
    bounds = np.sort(rng.choice(np.arange(1, len(lp)), size=12, replace=False))
    committed = []
    for part in np.split(lp, bounds):
        state.advance(part)
        committed.append(state.committed)
        keys, partial = state.best()
        assert keys == state.committed
        if max_pending_keys is not None:
            assert len(partial) <= max_pending_keys
    text = state.finish()
    assert all(text.startswith(c) for c in committed)  # committed keys are never taken back
    return text, state.score, committed


@pytest.mark.parametrize("kind", ["random", "peaked"])
def test_beam_finish_equals_offline_decoding(kind, small_lm):
    rng = np.random.default_rng(7)
    for lm in (None, small_lm):
        for blank_skip in (0.999, None):
            decoder = BeamSearchDecoder(beam_size=8, lm_path=lm, blank_skip_threshold=blank_skip)
            for _ in range(3):
                if kind == "random":
                    lp = rng.normal(0, 2.0, (200, 99))
                    lp -= np.logaddexp.reduce(lp, axis=1, keepdims=True)
                else:
                    lp = _peaked(rng)
                expected = decoder.decode_batch(lp[None].astype(np.float32), [len(lp)])[0]
                text, score, committed = _chunked_beam(decoder, lp.astype(np.float32), rng)
                assert text == expected
                assert score == decoder.decode(lp.astype(np.float32))[1]
                if kind == "peaked":
                    # A full beam keeps hopeless prefixes that dropped one early key, so little
                    # commits by agreement; bounding the pending keys commits the rest early.
                    text, _, committed = _chunked_beam(decoder, lp.astype(np.float32), rng, 6)
                    assert text == expected


def _undo_depths(state):
    """Depth of each prefix's LM undo stack, and the distinct stack entries the beam holds."""
    seen, depths = set(), []
    for stack in state.stacks:
        depth = 0
        while stack is not None:
            seen.add(id(stack))
            depth, stack = depth + 1, stack[2]
        depths.append(depth)
    return depths, len(seen)


def test_lm_undo_history_stays_bounded_over_a_long_stream(small_lm):
    rng = np.random.default_rng(11)
    lp = np.concatenate([_peaked(rng, 400) for _ in range(30)]).astype(np.float32)  # 12,000 frames
    bounded = BeamSearchDecoder(beam_size=8, lm_path=small_lm, lm_undo_keys=8)
    state = bounded.start(max_pending_keys=20)
    largest_entries = 0
    for part in np.split(lp, 60):
        state.advance(part)
        depths, entries = _undo_depths(state)
        assert max(depths) <= 16  # between lm_undo_keys and twice that
        largest_entries = max(largest_entries, entries)
    assert largest_entries <= 8 * 16
    text = state.finish()
    assert len(text) > 1500  # a long stream: thousands of keys typed, 16 kept per prefix at most
    # Trimming only forgets what a run of more than 8 backspaces would need, which these
    # emissions (a backspace is 1 key in 98) never type: the same text and score as unbounded.
    unbounded = BeamSearchDecoder(beam_size=8, lm=bounded.lm, lm_undo_keys=10**9)
    assert unbounded.decode(lp[:2000]) == bounded.decode(lp[:2000])


def test_streamed_beam_search_equals_offline_on_a_session(setup, small_lm):
    decoder = make_decoder("beam", lm_path=str(small_lm), beam_size=10)
    # max_pending_keys=None: commit only what all prefixes agree on, so the result is exact (the
    # untrained model types hundreds of random keys, where a forced commit may change it).
    streamer = StreamingDecoder.load(setup["ckpt"], decoder, max_pending_keys=None)
    streamed, updates, _ = stream(streamer, setup["emg"], 80)
    # Offline decoding of the same emissions (equal to the whole-session pass's, tested above).
    expected = decoder.decode_batch(streamed[None], [len(streamed)], onsets=True)[0]
    assert updates[-1].committed == expected.keys
    assert updates[-1].onsets.tolist() == expected.onsets.tolist()  # the partial keys' onsets too


def test_streamed_greedy_onsets_are_the_offline_ones(setup):
    """Each update's committed keys come with their onsets (emission frames from the stream's
    start), those decode_batch(..., onsets=True) gives for the same emissions."""
    decoder = make_decoder("greedy")
    streamed, updates, _ = stream(StreamingDecoder.load(setup["ckpt"], decoder), setup["emg"], 80)
    expected = decoder.decode_batch(streamed[None], [len(streamed)], onsets=True)[0]
    assert updates[-1].committed == expected.keys and len(expected.keys) > 10
    np.testing.assert_array_equal(updates[-1].onsets, expected.onsets)
    for update in updates:
        assert update.onsets.dtype == np.int64 and len(update.onsets) == len(update.committed)
        np.testing.assert_array_equal(update.onsets, expected.onsets[: len(update.committed)])
        assert (update.onsets < update.emissions).all()  # an onset is an emission already decoded
    assert len({len(u.committed) for u in updates}) > 5  # keys came over many pushes


# --- the command ---------------------------------------------------------------------------------


def test_stream_command_end_to_end(setup, capsys):
    # What the library's replay of the same chunks types (streamed emissions equal offline ones,
    # tested above); the offline transcript's CER differs at most by a few near-tie frames.
    expected = replay(StreamingDecoder.load(setup["ckpt"]), setup["session"], chunk_samples=80)
    offline = transcribe(load_runner(setup["ckpt"]), setup["session"])
    assert abs(expected.rates["CER"] - offline.rates["CER"]) < 2.0
    code = run(main, "emgtf.stream", ["--model", str(setup["ckpt"]), str(setup["session"]),
                                      "--chunk-ms", "40"])
    out, err = capsys.readouterr()
    assert code == 0, err
    # A .keras checkpoint streams through its TFLite step, built once and kept beside it.
    cached = list(setup["ckpt"].parent.glob("tds.keras.step80-*.tflite"))
    assert len(cached) == 1
    assert "chunks of 80 samples" in err and f"exact, no padding; TFLite step {cached[0].name}" in err
    # The typed block breaks its line after each enter key.
    first_line = "".join(expected.prediction.partition(ENTER)[:2])
    assert f"typed: {first_line}\n" in out
    assert f"CER:   {expected.rates['CER']:.2f} %" in out
    assert "latency: median " in out and " p90 " in out and " p99 " in out and "keys matched" in out
    assert "chunk CPU: median " in out and "per 40 ms chunk" in out
    assert out.count("[    5.0 s]") == 1  # the plain progress lines of a non-terminal stdout


def test_stream_command_bad_input_is_one_line(setup, small_lm, capsys):
    cases = [
        (["--chunk-ms", "0"], "emgtf.stream: error: chunk_ms must be > 0, got 0.0"),
        (["--decoder", "greedy", "--lm", str(small_lm)], "lm= needs decoder=beam"),
    ]
    for extra, message in cases:
        code = run(main, "emgtf.stream", ["--model", str(setup["ckpt"]), str(setup["session"]), *extra])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    code = run(main, "emgtf.stream", ["--model", str(setup["ckpt"]), str(setup["root"] / "none.hdf5")])
    err = capsys.readouterr().err
    assert code == 2 and "none.hdf5" in err and len(err.strip().splitlines()) == 1


def test_threads_are_set_before_tensorflow_runs_or_refused(setup):
    from emgtf.inference.steps import limit_threads

    limit_threads(None)  # TensorFlow's default: nothing to set
    with pytest.raises(EmgtfError, match="threads must be >= 1, got 0"):
        limit_threads(0)
    with pytest.raises(EmgtfError, match="only be set before it runs anything"):
        limit_threads(1)  # the fixture's model has run
