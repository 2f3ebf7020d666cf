"""Character error rates against hand-counted edit operations, in emg2qwerty's convention."""

from __future__ import annotations

import random

import pytest
from rapidfuzz.distance import Levenshtein

from emgtf.charset import BACKSPACE, ENTER, SHIFT
from emgtf.errors import EmgtfError
from emgtf.metrics import METRICS, ErrorCounter, check_metrics, error_rates, render, select


def counts(result: dict) -> tuple[int, int, int, int]:
    return (result["insertions"], result["deletions"], result["substitutions"],
            result["target_chars"])


def test_the_reference_convention_on_hand_made_pairs():
    # emg2qwerty counts editops(prediction, target): the edits that turn the prediction into
    # the target. A target character the prediction missed is an insertion there.
    assert counts(error_rates(["ab"], ["abc"])) == (1, 0, 0, 3)
    assert counts(error_rates(["abcd"], ["abc"])) == (0, 1, 0, 3)
    assert counts(error_rates(["abd"], ["abc"])) == (0, 0, 1, 3)
    assert counts(error_rates(["xbc", "bc"], ["abc", "abcd"])) == (2, 0, 1, 7)


def test_counts_are_rapidfuzz_editops_of_prediction_then_target():
    rng = random.Random(0)
    alphabet = "abc ⌫⇧"  # few letters: many ties between minimal alignments
    predictions, targets = [], []
    for _ in range(300):
        predictions.append("".join(rng.choices(alphabet, k=rng.randint(0, 12))))
        targets.append("".join(rng.choices(alphabet, k=rng.randint(0, 12))))
    expected = {"insert": 0, "delete": 0, "replace": 0}
    for prediction, target in zip(predictions, targets):
        for op in Levenshtein.editops(prediction, target):
            expected[op.tag] += 1
    result = error_rates(predictions, targets)
    assert (result["insertions"], result["deletions"], result["substitutions"]) == (
        expected["insert"], expected["delete"], expected["replace"]
    )
    assert result["target_chars"] == sum(map(len, targets))
    # Not the mirror image: the other argument order counts differently on these pairs.
    mirrored = error_rates(targets, predictions)
    assert (mirrored["insertions"], mirrored["deletions"]) != (
        result["insertions"], result["deletions"]
    )


def test_missing_character_is_an_insertion():
    result = error_rates(["helo"], ["hello"])
    assert counts(result) == (1, 0, 0, 5)
    assert result["CER"] == pytest.approx(20.0)
    assert result["IER"] == pytest.approx(20.0)
    assert result["DER"] == result["SER"] == 0.0


def test_extra_character_is_a_deletion_and_wrong_one_a_substitution():
    # "hxllo!" against "hello": x for e (substitution), a trailing ! to delete (deletion).
    result = error_rates(["hxllo!"], ["hello"])
    assert counts(result) == (0, 1, 1, 5)
    assert result["CER"] == pytest.approx(40.0)
    assert result["DER"] == pytest.approx(20.0)
    assert result["SER"] == pytest.approx(20.0)


def test_empty_prediction_misses_everything():
    result = error_rates([""], ["abc"])
    assert counts(result) == (3, 0, 0, 3)
    assert result["CER"] == result["IER"] == pytest.approx(100.0)


def test_empty_target_divides_by_one():
    result = error_rates(["ab"], [""])
    assert counts(result) == (0, 2, 0, 0)
    assert result["CER"] == result["DER"] == pytest.approx(200.0)
    both_empty = error_rates([""], [""])
    assert both_empty["CER"] == 0.0 and both_empty["target_chars"] == 0


def test_operations_are_summed_over_the_list_before_dividing():
    result = error_rates(["helo", "hxllo!", ""], ["hello", "hello", "ab"])
    assert counts(result) == (3, 1, 1, 12)
    assert result["CER"] == pytest.approx(100 * 5 / 12)
    assert result["IER"] + result["DER"] + result["SER"] == pytest.approx(result["CER"])
    # Not the mean of the per-pair rates (20, 40, 100).
    assert result["CER"] != pytest.approx((20 + 40 + 100) / 3)


def test_special_keys_are_characters():
    # The typed backspace is a key of the prediction the target does not have.
    assert counts(error_rates(["ab\u232bc"], ["abc"])) == (0, 1, 0, 3)
    assert counts(error_rates(["\u21e7hi"], ["\u21e7Hi"])) == (0, 0, 1, 3)


def test_swapped_characters_cost_two_edits():
    result = error_rates(["ba"], ["ab"])
    assert result["insertions"] + result["deletions"] + result["substitutions"] == 2
    assert result["CER"] == pytest.approx(100.0)


def test_counter_accumulates_like_one_call_and_resets():
    counter = ErrorCounter()
    counter.update("helo", "hello")
    counter.extend(["hxllo!", ""], ["hello", "ab"])
    assert counter.result() == error_rates(["helo", "hxllo!", ""], ["hello", "hello", "ab"])
    assert counter.errors == 5
    counter.reset()
    assert counts(counter.result()) == (0, 0, 0, 0)
    assert counter.result()["CER"] == 0.0


def test_bad_input_is_refused():
    with pytest.raises(EmgtfError, match="2 predictions and 1 targets"):
        error_rates(["a", "b"], ["a"])
    with pytest.raises(EmgtfError, match="single string"):
        error_rates("abc", "abd")
    with pytest.raises(EmgtfError, match="compare strings"):
        ErrorCounter().update([1, 2], "ab")


# --- rendered-text CER (NeurIPS 2026 Track 4) --------------------------------------------------

BS = BACKSPACE  # ⌫


def test_render_applies_each_backspace_to_the_text_before_it():
    assert render(f"cat{BS}r") == "car"
    assert render(f"teh{BS}{BS}he") == "the"
    assert render(f"{BS}{BS}ab") == "ab"  # nothing to delete at the start
    assert render(f"ab{BS}{BS}{BS}c") == "c"
    assert render(f"a{ENTER}{SHIFT}b") == f"a{ENTER}{SHIFT}b"  # only backspace edits


def test_a_typo_fixed_with_backspace_scores_no_rendered_error():
    # Hand-counted: prediction keys c a t ⌫ r, target keys c a r. Turning the prediction into the
    # target deletes 't' and '⌫': 2 key errors in 3 target keys; both render to "car".
    r = error_rates([f"cat{BS}r"], ["car"])
    assert counts(r) == (0, 2, 0, 3)
    assert r["CER"] == pytest.approx(200 / 3)
    assert (r["rendered_errors"], r["rendered_chars"], r["rendered_CER"]) == (0, 3, 0.0)
    # The typist's own correction decoded as the text they meant: 4 missed keys (e, h, ⌫, ⌫ of
    # t e h ⌫ ⌫ h e against t h e), no rendered error.
    r = error_rates(["the"], [f"teh{BS}{BS}he"])
    assert counts(r) == (4, 0, 0, 7) and r["CER"] == pytest.approx(400 / 7)
    assert (r["rendered_errors"], r["rendered_chars"], r["rendered_CER"]) == (0, 3, 0.0)


def test_a_missed_backspace_is_one_error_on_each_scale():
    # Target c a t ⌫ r (5 keys, renders "car"); the model misses the backspace: "catr".
    r = error_rates(["catr"], [f"cat{BS}r"])
    assert counts(r) == (1, 0, 0, 5) and r["CER"] == pytest.approx(20.0)
    # "catr" against "car": delete 't', 1 edit in 3 rendered characters.
    assert (r["rendered_errors"], r["rendered_chars"]) == (1, 3)
    assert r["rendered_CER"] == pytest.approx(100 / 3)


def test_rendered_cer_is_summed_over_sessions_before_dividing():
    # Session 1: 9 characters, perfect. Session 2: the missed backspace above (1 error in 3).
    # Corpus-level: 1 / 12 = 8.33 %, not the mean of the sessions' 0 % and 33.3 %.
    r = error_rates(["the quick", "catr"], ["the quick", f"cat{BS}r"])
    assert (r["rendered_errors"], r["rendered_chars"]) == (1, 12)
    assert r["rendered_CER"] == pytest.approx(100 / 12)
    assert r["CER"] == pytest.approx(100 / 14)  # 1 key error in 9 + 5 keys


def test_the_track4_set_is_exactly_the_tracks_rates():
    r = error_rates(["catr"], [f"cat{BS}r"])
    assert list(select(r, "track4")) == ["CER", "IER", "DER", "SER", "rendered_CER"]
    assert select(r, "track4") == {k: r[k] for k in ("CER", "IER", "DER", "SER", "rendered_CER")}
    assert set(METRICS) == {"emg2qwerty", "track4"}
    with pytest.raises(EmgtfError, match="^metrics must be one of emg2qwerty, track4, got 'wer'$"):
        check_metrics("wer")


def test_counter_adds_saved_counts_like_the_pairs_themselves():
    pairs = (["catr", "the"], [f"cat{BS}r", f"teh{BS}{BS}he"])
    counter = ErrorCounter()
    for prediction, target in zip(*pairs):
        counter.add_counts(error_rates([prediction], [target]))
    assert counter.result() == error_rates(*pairs)


@pytest.mark.parametrize("decoded, key_edits, rendered_edits", [
    (f"cat{BS}r", (0, 0, 0), 0),
    ("car", (2, 0, 0), 0),
    ("catr", (1, 0, 0), 1),
    ("cat", (2, 0, 0), 1),
])
def test_the_worked_example_of_docs_scoring(decoded, key_edits, rendered_edits):
    # docs/concepts/scoring.md: target keys c a t ⌫ r (5 keys), rendered "car" (3 characters).
    r = error_rates([decoded], [f"cat{BS}r"])
    assert counts(r) == (*key_edits, 5)
    assert r["CER"] == pytest.approx(100 * sum(key_edits) / 5)
    assert (r["rendered_errors"], r["rendered_chars"]) == (rendered_edits, 3)
    assert r["rendered_CER"] == pytest.approx(100 * rendered_edits / 3)
