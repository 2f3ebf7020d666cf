"""Each decoded key's onset frame (the first frame of the path segment that emitted it), from
greedy and beam decoding, offline and fed chunk by chunk, on the cases of Meta's own emg2qwerty
decoder tests (tests/decoder_test.py there: test_timestamps and test_beamstate_multiple_paths)."""

from __future__ import annotations

import numpy as np
import pytest

from emgtf.charset import charset
from emgtf.decoding import BeamSearchDecoder, Decoding, GreedyDecoder, ctc_greedy, make_decoder
from tests.decoding.test_decoding import FIXTURE_LM, batch, emissions, needs_fixture_lm, spelled

CS = charset()


def meta_emissions(*paths: str) -> np.ndarray:
    """As Meta's test builds them: log(1) on each path's class at each frame, log(1e-10) elsewhere
    (not normalised)."""
    frames = max(len(p) for p in paths)
    out = np.full((frames, CS.num_classes), 1e-10)
    for path in paths:
        out[np.arange(frames), CS.str_to_labels(path)] = 1.0
    return np.log(out)


def decoders(lm: bool) -> dict:
    out = {"greedy": GreedyDecoder(), "beam 1": BeamSearchDecoder(beam_size=1),
           "beam 50": BeamSearchDecoder(beam_size=50, blank_skip_threshold=None)}
    if lm:
        out["beam 1 + LM"] = BeamSearchDecoder(beam_size=1, lm_path=FIXTURE_LM)
    return out


def decode(decoder, lp: np.ndarray) -> Decoding:
    (result,) = decoder.decode_batch(lp[None].astype(np.float32), np.array([len(lp)]), onsets=True)
    return result


# Meta's facts: path -> (decoding, onset of each key).
META_CASES = [
    ("abb", "ab", [0, 1]),  # test_timestamps, scenario 1
    ("aab", "ab", [0, 2]),  # scenario 2: the same decoding, b's onset later
    ("abbbbbb", "ab", [0, 1]),  # test_beamstate_multiple_paths
    ("aaaaaab", "ab", [0, 6]),
]


@needs_fixture_lm
@pytest.mark.parametrize("path, keys, onsets", META_CASES)
def test_meta_onset_cases(path, keys, onsets):
    lp = meta_emissions(path)
    for name, decoder in decoders(lm=True).items():
        result = decode(decoder, lp)
        assert result.keys == keys, name
        assert result.onsets.tolist() == onsets, name
        assert result.onsets.dtype == np.int64


def test_onsets_start_runs_after_blank_and_split_repeats():
    # "- - a a - a b b - ⏎": a at 2, a again at 5 (a blank between), b at 6, enter at 9.
    lp = emissions(["-", "-", "a", "a", "-", "a", "b", "b", "-", "\u23ce"])
    for name, decoder in decoders(lm=False).items():
        result = decode(decoder, lp)
        assert (result.keys, result.onsets.tolist()) == ("aab\u23ce", [2, 5, 6, 9]), name
    assert ctc_greedy(lp[None], [len(lp)]) == ["aab\u23ce"]  # without onsets: the keys only


def test_onsets_ignore_frames_past_the_length():
    lp, lengths = batch(emissions(["a", "-", "b"]), emissions(["-", "c"]))
    for decoder in decoders(lm=False).values():
        results = decoder.decode_batch(lp, lengths, onsets=True)
        assert [(r.keys, r.onsets.tolist()) for r in results] == [("ab", [0, 2]), ("c", [1])]


@pytest.mark.parametrize("kind", ["greedy", "beam"])
def test_streaming_onsets_are_the_offline_ones(kind):
    # Chunks of any size: the onsets count frames from the stream's start, as offline.
    rng = np.random.default_rng(0)
    lp = spelled("the quick brown fox jumps", rng)
    decoder = make_decoder(kind) if kind == "greedy" else make_decoder(kind, beam_size=8)
    offline = decode(decoder, lp)
    state = decoder.start()
    seen = []
    for start in range(0, len(lp), 7):
        state.advance(lp[start:start + 7])
        committed = state.committed_onsets
        assert len(committed) == len(state.committed)
        assert committed.tolist() == offline.onsets[:len(committed)].tolist()
        seen.append(len(committed))
    assert seen[-1] > 0
    assert state.finish() == offline.keys
    if kind == "beam":
        labels, onsets, _ = decoder.start().__class__(decoder).final_onsets()  # empty stream
        assert (labels, onsets.tolist()) == ([], [])


def test_greedy_onsets_are_the_alignment_views():
    from emgtf.reporting.alignment import greedy_path

    lp = spelled("pack my box", np.random.default_rng(1))
    frames, keys = greedy_path(lp)
    result = decode(GreedyDecoder(), lp)
    assert (keys, frames.tolist()) == (result.keys, result.onsets.tolist())
