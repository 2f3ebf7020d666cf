"""CTC decoders, the KenLM character model wrapper and the word-internal LM builder."""

from __future__ import annotations

import importlib.util
import math

import kenlm
import numpy as np
import pytest

from emgtf.charset import BACKSPACE, SHIFT, charset
from emgtf.decoding import BeamSearchDecoder, ctc_greedy, make_decoder
from emgtf.errors import EmgtfError
from emgtf.decoding.lm import LN10, CharLM, default_lm_path
from tests.helpers import REPO, FIXTURES

FIXTURE_LM = FIXTURES / "reuters-3-gram-char-lm.arpa"
needs_fixture_lm = pytest.mark.skipif(
    not FIXTURE_LM.is_file(),
    reason=f"the Reuters KenLM fixture is not at {FIXTURE_LM} (shared/ is checked out beside "
    "the repo in CI)",
)
CS = charset()
B = CS.blank


def emissions(frames, peak: float = 0.9) -> np.ndarray:
    """(len(frames), 99) log-probs; each frame is a char, "-" for blank, or a {char: prob} dict.

    Plain frames put ``peak`` on their class and share the rest evenly.
    """
    out = np.empty((len(frames), CS.num_classes))
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict):
            frame = {frame: peak}
        probs = np.full(CS.num_classes, (1.0 - sum(frame.values())) / (CS.num_classes - len(frame)))
        for char, p in frame.items():
            probs[B if char == "-" else CS.char_to_label(char)] = p
        out[i] = np.log(probs)
    return out


def spelled(text: str, rng: np.random.Generator) -> np.ndarray:
    """Peaked emissions typing ``text``: 1-2 frames per key, blanks between, some noise."""
    frames = []
    for char in text:
        frames += [char] * int(rng.integers(1, 3)) + ["-"] * int(rng.integers(1, 4))
    lp = emissions(frames, peak=0.8)
    lp += rng.normal(0.0, 0.3, size=lp.shape)
    return lp - np.logaddexp.reduce(lp, axis=1, keepdims=True)


def batch(*utterances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pads utterances into (batch, frames, 99) with junk (not blank) beyond each length."""
    frames = max(len(u) for u in utterances)
    out = np.tile(emissions(["z"]), (len(utterances), frames, 1))
    for i, u in enumerate(utterances):
        out[i, : len(u)] = u
    return out.astype(np.float32), np.array([len(u) for u in utterances])


# --- greedy ------------------------------------------------------------------------------------


def test_greedy_collapses_repeats_and_keeps_keys_split_by_blank():
    lp, lengths = batch(
        emissions(list("aa-a-bb") + ["-", "-"]),
        emissions(list("-hh-e-ll-l-oo")),
        emissions(["-", "-"]),
    )
    assert ctc_greedy(lp, lengths) == ["aab", "hello", ""]


def test_greedy_ignores_frames_past_the_length():
    lp, lengths = batch(emissions(list("ab")), emissions(list("abcd")))
    lengths[1] = 2
    assert ctc_greedy(lp, lengths) == ["ab", "ab"]
    assert ctc_greedy(lp, np.array([0, 0])) == ["", ""]


def test_greedy_decodes_special_keys():
    keys = [SHIFT, "H", "i", BACKSPACE, "-", " ", "\u23ce"]
    assert ctc_greedy(*batch(emissions(keys))) == [f"{SHIFT}Hi{BACKSPACE} \u23ce"]


def test_bad_shapes_are_refused():
    with pytest.raises(EmgtfError, match="log_probs"):
        ctc_greedy(np.zeros((2, 5, 98)), [5, 5])
    with pytest.raises(EmgtfError, match="lengths"):
        ctc_greedy(np.zeros((2, 5, 99)), [5])
    with pytest.raises(EmgtfError, match="lengths"):
        make_decoder("beam").decode_batch(np.zeros((1, 5, 99)), [6])


# --- beam search without LM ---------------------------------------------------------------------


def test_beam_equals_greedy_on_peaked_emissions():
    rng = np.random.default_rng(0)
    texts = ["hello world", "the quick brown fox", "aab  bba", f"{SHIFT}Ok{BACKSPACE}k."]
    lp, lengths = batch(*(spelled(t, rng) for t in texts))
    greedy = ctc_greedy(lp, lengths)
    assert greedy == texts
    assert make_decoder("beam").decode_batch(lp, lengths) == greedy
    exact = make_decoder("beam", blank_skip_threshold=None)
    assert exact.decode_batch(lp, lengths) == greedy


def test_beam_sums_the_paths_of_a_prefix():
    # Two frames with p(blank)=0.6, p(a)=0.4: greedy says "" (0.36), but "a" has three paths
    # (a a, a -, - a) worth 0.64 together.
    lp = emissions([{"-": 0.6, "a": 0.4 - 1e-6}] * 2)
    assert ctc_greedy(lp[None], [2]) == [""]
    text, score = BeamSearchDecoder(blank_skip_threshold=None).decode(lp)
    assert text == "a"
    assert score == pytest.approx(math.log(0.64), abs=1e-4)


def test_beam_keeps_only_the_top_labels_of_each_frame():
    # With a single label per frame the beam can only follow the argmax: greedy again.
    lp = emissions([{"-": 0.6, "a": 0.4 - 1e-6}] * 2)
    assert BeamSearchDecoder(max_labels_per_step=1).decode(lp)[0] == ""


def test_make_decoder_refuses_unknown_kinds_and_options():
    assert make_decoder("greedy").decode_batch(*batch(emissions(list("ab")))) == ["ab"]
    with pytest.raises(EmgtfError, match="unknown kind 'viterbi'"):
        make_decoder("viterbi")
    with pytest.raises(EmgtfError, match="beam_width"):
        make_decoder("beam", beam_width=3)
    with pytest.raises(EmgtfError, match="beam_size"):
        make_decoder("beam", beam_size=0)


# --- language model ------------------------------------------------------------------------------


def test_missing_lm_file_names_it(tmp_path):
    missing = tmp_path / "nope.arpa"
    with pytest.raises(EmgtfError, match="nope.arpa: language model file not found"):
        make_decoder("beam", lm_path=missing)


def test_missing_default_lm_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EMGTF_CACHE", str(tmp_path))
    assert default_lm_path().parent == tmp_path / "lm"
    with pytest.raises(EmgtfError, match="build it with `python scripts/build_lm.py`"):
        make_decoder("beam", lm_path="default")


def test_unreadable_lm_file_is_refused(tmp_path):
    bad = tmp_path / "bad.arpa"
    bad.write_text("not an arpa file\n")
    with pytest.raises(EmgtfError, match="bad.arpa: not a KenLM"):
        CharLM(bad)


@pytest.fixture(scope="module")
def reuters_lm() -> CharLM:
    if not FIXTURE_LM.is_file():
        pytest.skip(f"the Reuters KenLM fixture is not at {FIXTURE_LM}")
    return CharLM(FIXTURE_LM)


@needs_fixture_lm
def test_lm_vocabulary_and_natural_log_scores(reuters_lm):
    # The fixture's tokens: lower-case letters, digits and most punctuation, but no space.
    assert set("abcdefghijklmnopqrstuvwxyz0123456789.,'-") <= reuters_lm.vocabulary
    assert " " not in reuters_lm.vocabulary and "A" not in reuters_lm.vocabulary
    model = kenlm.Model(str(FIXTURE_LM))
    assert reuters_lm.score_keys("the") == pytest.approx(model.score("t h e") * LN10, rel=1e-5)


@needs_fixture_lm
def test_lm_scores_words_separately_as_the_reference(reuters_lm):
    score = reuters_lm.score_keys
    # A space ends the word (</s>); the next word starts afresh from <s>.
    assert score("the cat") == pytest.approx(score("the") + score("cat"))
    # A boundary with no word open scores the unigram <unk>.
    assert score(" ") == pytest.approx(reuters_lm.unk_score)
    assert score("the") > score("thx") + 2.0
    # Shift and capitals are outside the lower-case vocabulary: they end the word, as a space does.
    unk = reuters_lm.unk_score
    assert score(f"{SHIFT}The") == pytest.approx(2 * unk + score("he"))
    assert score("tHe") == pytest.approx(score("t e"))


@needs_fixture_lm
def test_lm_fold_case_scores_capitals_as_lower_case_and_skips_shift():
    folded = CharLM(FIXTURE_LM, fold_case=True)
    score = folded.score_keys
    assert score(f"{SHIFT}The") == pytest.approx(score("the"))
    assert score(f"t{SHIFT}He") == pytest.approx(score("the"))
    assert score("the cat") == pytest.approx(score("the") + score("cat"))
    decoder = make_decoder("beam", lm_path=str(FIXTURE_LM), lm_fold_case=True)
    assert decoder.lm.fold_case and "lm_fold_case=True" in repr(decoder)
    assert not make_decoder("beam", lm_path=str(FIXTURE_LM)).lm.fold_case


@needs_fixture_lm
def test_backspace_restores_the_lm_state(reuters_lm):
    score = reuters_lm.score_keys
    assert score(f"thx{BACKSPACE}e") == pytest.approx(score("the"))
    assert score(f"the {BACKSPACE}{BACKSPACE}{BACKSPACE}{BACKSPACE}cat") == pytest.approx(
        score("cat")
    )
    assert score(f"{BACKSPACE}{BACKSPACE}a") == pytest.approx(score("a"))  # nothing to delete


@needs_fixture_lm
def test_lm_prefers_the_word_on_ambiguous_frames(reuters_lm):
    # The third key is slightly more likely "x" than "e" acoustically.
    frames = ["t", "-", "h", "-", {"x": 0.5, "e": 0.45}, "-", " ", "-"]
    lp = emissions(frames)
    assert BeamSearchDecoder().decode(lp)[0] == "thx "
    assert BeamSearchDecoder(lm=reuters_lm).decode(lp)[0] == "the "
    lp, lengths = batch(lp, emissions(["-", "a", "-"]))
    assert make_decoder("beam", lm=reuters_lm).decode_batch(lp, lengths) == ["the ", "a"]


@needs_fixture_lm
def test_decoder_scores_a_corrected_typo_like_the_word(reuters_lm):
    # Certain emissions: the only path's score is the LM part, so "thx⌫e" must equal "the"
    # (the x and the backspace take back each other's LM score and insertion bonus).
    def certain(keys):
        frames = [f for key in keys for f in (key, "-")]
        return emissions([{f: 1.0 - 1e-12} for f in frames])

    decoder = BeamSearchDecoder(lm=reuters_lm, lm_weight=2.0, insertion_bonus=2.0)
    typo_text, typo_score = decoder.decode(certain(f"thx{BACKSPACE}e"))
    word_text, word_score = decoder.decode(certain("the"))
    assert typo_text == f"thx{BACKSPACE}e" and word_text == "the"
    expected = 2.0 / LN10 * reuters_lm.score_keys("the") + 3 * 2.0
    assert word_score == pytest.approx(expected, abs=1e-6)
    assert typo_score == pytest.approx(word_score, abs=1e-6)


@needs_fixture_lm
def test_blank_skipping_matches_the_exact_search(reuters_lm):
    rng = np.random.default_rng(1)
    frames = []
    for char in "we sell shares. profits rose 4 pct":
        other = CS.chars[rng.integers(26)]  # an acoustic confusion with some letter
        if other == char:
            other = "q"
        frames.append({char: 0.55, other: 0.35})
        frames += [{"-": 1 - 1e-5}] * int(rng.integers(1, 4)) + [{"-": 0.99}]
    lp = emissions(frames)
    assert np.mean(np.exp(lp[:, B]) > 0.999) > 0.4  # many frames are skipped
    fast = BeamSearchDecoder(lm=reuters_lm).decode(lp)
    exact = BeamSearchDecoder(lm=reuters_lm, blank_skip_threshold=None).decode(lp)
    assert fast[0] == exact[0]
    assert fast[1] == pytest.approx(exact[1], abs=1e-3)
    assert BeamSearchDecoder().decode(lp)[0] != fast[0]  # the LM did change the decoding


# --- building an LM ------------------------------------------------------------------------------


def load_build_lm():
    spec = importlib.util.spec_from_file_location("build_lm", REPO / "scripts" / "build_lm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_lm_writes_a_normalized_arpa_that_kenlm_loads(tmp_path, capsys):
    words = tmp_path / "words.tsv"
    words.write_text(
        "the\t500\nthey\t80\nthere\t120\nthen\t90\nhello\t10\nworld\t12\nword\t30\n"
        "don't\t40\nyes\nhelp\t7\nhell\t3\nshell\t2\ncafé\t4\n"
    )
    out = tmp_path / "lm" / "tiny.arpa"
    build_lm = load_build_lm()
    assert build_lm.main(["--word-counts", str(words), "--order", "4", "--out", str(out)]) == 0
    assert '"order": 4' in capsys.readouterr().out

    lm = CharLM(out)
    assert lm.order == 4
    assert lm.vocabulary <= set("abcdefghijklmnopqrstuvwxyz")
    assert {"a", "c", "f", "e"} <= lm.vocabulary  # "café" counted as "cafe"
    assert lm.score_keys("the") > lm.score_keys("teh") + 1.0
    assert lm.score_keys("hello") > lm.score_keys("xqzjv") + 5.0

    # Backoff weights and interpolated probabilities form a proper distribution in any context.
    model = kenlm.Model(str(out))
    tokens = sorted(lm.vocabulary) + ["</s>"]
    for context in ["", "t h", "h e l", "q q", "d o n"]:
        state = kenlm.State()
        model.BeginSentenceWrite(state)
        for token in context.split():
            following = kenlm.State()
            model.BaseScore(state, token, following)
            state = following
        unk = 10 ** model.BaseScore(state, "<unk>", kenlm.State())
        total = sum(10 ** model.BaseScore(state, t, kenlm.State()) for t in tokens) + unk
        assert total == pytest.approx(1.0, abs=1e-4), context

    with pytest.raises(EmgtfError, match="exists; pass --overwrite"):
        build_lm.main(["--word-counts", str(words), "--out", str(out)])
    assert build_lm.main(["--word-counts", str(words), "--out", str(out), "--overwrite"]) == 0
    assert CharLM(out).order == 6


def test_build_lm_from_wordfreq(tmp_path):
    out = tmp_path / "wf.arpa"
    assert load_build_lm().main(["--words", "3000", "--out", str(out)]) == 0
    lm = CharLM(out)
    assert lm.order == 6
    assert lm.score_keys("people") > lm.score_keys("pqoplx") + 5.0


# KenLM binary files (Meta's wikitext-103-6gram-charlm.bin is one) of the conftest small_lm's ARPA,
# made with KenLM's build_binary (the kenlm wheel has none): `build_binary -s words-4gram.arpa
# words-4gram.probing.klm` and `build_binary -s trie words-4gram.arpa words-4gram.trie.klm`.
BINARY_LMS = sorted((REPO / "tests" / "decoding" / "data").glob("words-4gram.*.klm"))


@pytest.mark.parametrize("binary", BINARY_LMS, ids=lambda p: p.name.split(".")[1])
def test_kenlm_binary_files_load_as_lm_path_and_score_as_their_arpa(binary, small_lm):
    assert len(BINARY_LMS) == 2
    arpa, packed = CharLM(small_lm), CharLM(binary)
    assert packed.order == arpa.order == 4 and packed.vocabulary == arpa.vocabulary
    for keys in ("the", "that with", "thx", f"thx{BACKSPACE}e", "zzz the", f"{SHIFT}The"):
        assert packed.score_keys(keys) == pytest.approx(arpa.score_keys(keys), abs=1e-4), keys
    # decoder.lm_path takes the binary file as it takes the ARPA: the same text, the same score.
    frames = ["t", "-", "h", "-", {"x": 0.5, "a": 0.45}, "-", "t", "-", " ", "-"]
    lp, lengths = batch(emissions(frames), emissions(["-", "a", "n", "d", "-"]))
    from_arpa = make_decoder("beam", lm_path=str(small_lm))
    from_binary = make_decoder("beam", lm_path=str(binary))
    assert from_binary.decode_batch(lp, lengths) == from_arpa.decode_batch(lp, lengths) == ["that ", "and"]
    assert from_binary.decode(lp[0])[1] == pytest.approx(from_arpa.decode(lp[0])[1], abs=1e-4)
