"""GroundTruth compares and hashes by its keys, on the cases of Meta's own emg2qwerty test of
``LabelData`` (tests/data_test.py there: text and labels of the same keys are equal, and joining
two is the ground truth of the joined text)."""

from __future__ import annotations

import numpy as np
import pytest

from emgtf.charset import charset
from emgtf.data.session import EMGSession, GroundTruth
from emgtf.errors import EmgtfError

# Meta's cases: text, then the labels of its keys in Meta's charset order (emgtf's is the same:
# a = 0, b = 1, ⌫ = 94, ⏎ = 95; \n and \r are enter, \b backspace, curly quotes and the em dash
# their plain keys).
META_CASES = [
    ("aa", [0, 0]),
    ("ab", [0, 1]),
    ("", []),
    ("\n\r\b\x08", [95, 95, 94, 94]),
    ("⏎\na⌫\b", [95, 95, 0, 94, 94]),
    ("’“”—", [68, 63, 63, 74]),
]


@pytest.mark.parametrize("text, labels", META_CASES)
def test_text_and_labels_of_the_same_keys_are_equal(text, labels):
    from_text = GroundTruth.from_text(text)
    from_labels = GroundTruth.from_labels(labels)
    assert from_text == from_labels
    assert from_text.text == from_labels.text
    assert list(from_text.labels) == labels and list(from_labels.labels) == labels
    assert hash(from_text) == hash(from_labels)
    assert GroundTruth.from_text(text + text) == from_text + from_labels
    assert GroundTruth.from_labels(labels + labels) == from_text + from_labels


def test_equality_is_by_keys_and_ignores_press_times():
    a = GroundTruth.from_text("ab", timestamps=[1.0, 2.0])
    b = GroundTruth.from_text("ab", timestamps=[5.0, 6.0])
    assert a == b and not (a != b) and hash(a) == hash(b)
    assert a != GroundTruth.from_text("ba") and a != GroundTruth.from_text("abc")
    assert a != "ab"  # a string is not a ground truth
    assert len({a, b, GroundTruth.from_text("ba")}) == 2
    assert {a: 1}[b] == 1
    joined = a + GroundTruth.from_text("c", timestamps=[7.0])
    assert joined.text == "abc" and list(joined.timestamps) == [1.0, 2.0, 7.0]
    assert np.isnan(GroundTruth.from_text("xy").timestamps).all()
    with pytest.raises(EmgtfError, match="^ground truth: 1 timestamps for 2 keys$"):
        GroundTruth.from_text("ab", timestamps=[1.0])


def test_a_sessions_ground_truth_compares_with_the_texts(tmp_path):
    from emgtf.data.session import write_session

    t = 1.7e9 + np.arange(4000) / 2000.0
    emg = np.zeros((4000, 16), np.float32)
    keys = [("a", 0.1), ("Key.backspace", 0.3), ("b", 0.5), ("Key.enter", 1.0), ("c", 1.5)]
    path = write_session(tmp_path / "s.hdf5", time=t, emg_left=emg, emg_right=emg,
                         keystrokes=[{"key": k, "start": t[0] + s, "end": t[0] + s + 0.05}
                                     for k, s in keys],
                         prompts=[], session_name="s", user="u")
    with EMGSession(path) as session:
        whole, again = session.ground_truth(), session.ground_truth()
        first = session.ground_truth(end_t=t[0] + 0.6)
        rest = session.ground_truth(start_t=t[0] + 0.7)
    assert whole == again and hash(whole) == hash(again)
    assert whole == GroundTruth.from_text("a\bb\nc") == GroundTruth.from_text("a⌫b⏎c")
    assert first + rest == whole
    assert list(whole.labels) == list(charset().str_to_labels("a⌫b⏎c"))
