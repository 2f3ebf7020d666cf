import string

import numpy as np
import pytest

from emgtf.charset import BACKSPACE, ENTER, SHIFT, charset


def test_sizes_and_blank():
    cs = charset()
    assert cs.num_classes == 99
    assert cs.num_keys == 98
    assert cs.blank == 98
    assert charset() is cs


def test_label_order_matches_pretrained_checkpoints():
    cs = charset()
    expected = (
        list(string.ascii_lowercase) + list(string.ascii_uppercase) + list(string.digits)
        + list(string.punctuation) + ["\u232b", "\u23ce", " ", "\u21e7"]
    )
    assert list(cs.chars) == expected
    assert cs.char_to_label("a") == 0
    assert cs.char_to_label("A") == 26
    assert cs.char_to_label("0") == 52
    assert cs.char_to_label("!") == 62
    assert cs.char_to_label(BACKSPACE) == 94
    assert cs.char_to_label(ENTER) == 95
    assert cs.char_to_label(" ") == 96
    assert cs.char_to_label(SHIFT) == 97


def test_round_trip_of_every_key():
    cs = charset()
    text = "".join(cs.chars)
    labels = cs.str_to_labels(text)
    assert labels.dtype == np.int32
    assert labels.tolist() == list(range(98))
    assert cs.labels_to_str(labels) == text


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("line\nbreak", f"line{ENTER}break"),
        ("cr\rhere", f"cr{ENTER}here"),
        ("oops\b", f"oops{BACKSPACE}"),
        ("don\u2019t", "don't"),
        ("\u201cquoted\u201d", '"quoted"'),
        ("a\u2014b", "a-b"),
        ("caf\u00e9 na\u00efve \u00c5", "cafe naive A"),  # unambiguous transliterations
        ("stra\u00dfe", "strae"),  # sharp s has no one-letter ASCII form: dropped
        ("\ufb01x", "x"),  # the 'fi' ligature is two letters: dropped
        ("\u4e2d\u6587", ""),  # no ASCII form at all
        ("tab\there", "tabhere"),  # a control character is no key
    ],
)
def test_normalization(raw, clean):
    assert charset().clean_str(raw) == clean


def test_str_to_labels_normalizes_first():
    cs = charset()
    assert cs.labels_to_str(cs.str_to_labels("It\u2019s\n")) == f"It's{ENTER}"


@pytest.mark.parametrize(
    "key, char",
    [
        ("a", "a"),
        ("H", "H"),
        ("4", "4"),
        ("'", "'"),
        ("Key.space", " "),
        ("Key.enter", ENTER),
        ("Key.backspace", BACKSPACE),
        ("Key.shift", SHIFT),
        ("Key.shift_r", None),
        ("Key.tab", None),
        ("Key.ctrl", None),
        ("Key.cmd", None),
        ("\u2019", "'"),
        ("\u00e9", "e"),
        ("\u00df", None),
    ],
)
def test_key_to_char(key, char):
    assert charset().key_to_char(key) == char


def test_labels_to_str_rejects_blank_and_out_of_range():
    cs = charset()
    with pytest.raises(ValueError, match="98"):
        cs.labels_to_str([0, 98])
    with pytest.raises(ValueError):
        cs.labels_to_str([-1])
