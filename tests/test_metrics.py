"""Character error rates against hand-counted edit operations, in emg2qwerty's convention."""

from __future__ import annotations

import random

import pytest
from rapidfuzz.distance import Levenshtein

from emgtf.errors import EmgtfError
from emgtf.metrics import ErrorCounter, error_rates


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
