"""Error analysis of (prediction, target) key strings: the confusion matrix, insertions and
deletions follow rapidfuzz's editops(prediction, target) in the emg2qwerty reference's naming; the
keys are grouped by hand and finger; the figures draw those numbers."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import AxesImage
from rapidfuzz.distance import Levenshtein

from emgtf.charset import BACKSPACE, ENTER, SHIFT, SPACE, charset
from emgtf.errors import EmgtfError
from emgtf.metrics import error_rates
from emgtf.reporting.error_analysis import analyze_edits, report_pairs
from emgtf.reporting.error_figures import confusion_figure, key_rates_figure, substitutions_figure
from emgtf.reporting.keyboard_groups import key_groups, key_order


def random_pairs(seed: int = 0, n: int = 40):
    """Targets of random keys and predictions derived from them by random edits."""
    rng = np.random.default_rng(seed)
    keys = np.asarray(charset().chars)
    common = keys[rng.choice(len(keys), 12, replace=False)]  # a few keys, so pairs repeat
    pairs = []
    for _ in range(n):
        target = list(rng.choice(common, rng.integers(0, 30)))
        prediction = []
        for c in target:
            r = rng.random()
            if r < 0.1:
                continue  # missed
            prediction.append(rng.choice(common) if r < 0.25 else c)
            if rng.random() < 0.08:
                prediction.append(rng.choice(keys))  # spurious
        pairs.append(("".join(prediction), "".join(target)))
    return pairs


def test_operations_are_named_as_the_reference_names_them():
    a = analyze_edits(["helo", "hxllo", "heello"], ["hello", "hello", "hello"])
    cs = charset()
    assert a.insertions[cs.char_to_label("l")] == 1 and a.insertions.sum() == 1  # typed l missed
    assert a.substitutions[cs.char_to_label("e"), cs.char_to_label("x")] == 1 and a.substitutions.sum() == 1
    assert a.deletions[cs.char_to_label("e")] == 1 and a.deletions.sum() == 1  # an e too many
    assert a.totals() == {"substitutions": 1, "insertions": 1, "deletions": 1, "errors": 3,
                          "target_chars": 15, "CER": 20.0}
    assert a.top_substitutions() == [("e", "x", 1)]
    assert a.insertion_rate[cs.char_to_label("l")] == pytest.approx(1 / 6)
    assert a.deletion_rate[cs.char_to_label("e")] == pytest.approx(1 / 3)  # of 3 decoded e
    assert np.isnan(a.insertion_rate[cs.char_to_label("x")])  # never typed


def test_counts_are_the_editops_of_the_same_pairs():
    pairs = random_pairs()
    predictions, targets = zip(*pairs)
    a = analyze_edits(predictions, targets)
    ops = [op for p, t in pairs for op in Levenshtein.editops(p, t)]
    assert a.substitutions.sum() == sum(op.tag == "replace" for op in ops) > 0
    assert a.insertions.sum() == sum(op.tag == "insert" for op in ops) > 0
    assert a.deletions.sum() == sum(op.tag == "delete" for op in ops) > 0
    cs = charset()
    expected = np.zeros_like(a.substitutions)
    for p, t in pairs:
        for op in Levenshtein.editops(p, t):
            if op.tag == "replace":
                expected[cs.char_to_label(t[op.dest_pos]), cs.char_to_label(p[op.src_pos])] += 1
    np.testing.assert_array_equal(a.substitutions, expected)
    assert np.all(np.diag(a.substitutions) == 0)
    assert a.target_counts.sum() == sum(len(t) for t in targets)
    assert a.prediction_counts.sum() == sum(len(p) for p in predictions)
    # The same total as the error rates the project reports (edit distance does not depend on
    # the direction or on how ties are broken).
    assert a.totals()["CER"] == pytest.approx(error_rates(list(predictions), list(targets))["CER"])
    counts = [c for _, _, c in a.top_substitutions(1000)]
    assert sum(counts) == a.substitutions.sum() and counts == sorted(counts, reverse=True)


def test_every_key_is_in_one_hand_finger_group():
    groups = dict(key_groups())
    assert sorted(key_order()) == sorted(charset().chars) and len(key_order()) == 98
    assert list(groups) == ["L pinky", "L ring", "L middle", "L index", "thumb", "R index", "R middle",
                            "R ring", "R pinky", "shift"]
    assert groups["thumb"] == (SPACE,) and groups["shift"] == (SHIFT,)
    assert {"a", "A", "q", "z", "1", "!"} <= set(groups["L pinky"])
    assert {"f", "F", "g", "r", "t", "v", "b"} <= set(groups["L index"])
    assert {"j", "h", "n", "m", "y", "u"} <= set(groups["R index"])
    assert {BACKSPACE, ENTER, "p", ";", "/", "?"} <= set(groups["R pinky"])
    assert groups["L pinky"].index("a") + 1 == groups["L pinky"].index("A")  # shifted after its key


def test_bad_pairs_and_reports_are_one_line_errors():
    with pytest.raises(EmgtfError, match="not a key of the charset"):
        analyze_edits(["h\u00e9"], ["he"])
    with pytest.raises(EmgtfError, match="one prediction per target"):
        analyze_edits(["a"], [])
    with pytest.raises(EmgtfError, match="single string"):
        analyze_edits("abc", "abd")
    with pytest.raises(EmgtfError, match="no 'sessions'"):
        report_pairs({"overall": {}}, "r.json")
    with pytest.raises(EmgtfError, match="r.json: session 0 has no 'prediction'"):
        report_pairs({"sessions": [{"session": "s", "CER": 1.0}]}, "r.json")
    assert report_pairs({"sessions": [{"prediction": "ab", "target": "abc"}]}) == (["ab"], ["abc"])


def test_figures_draw_the_counts():
    pairs = random_pairs(seed=1)
    a = analyze_edits(*zip(*pairs))
    fig = confusion_figure(a)
    (image,) = [c for c in fig.axes[0].get_children() if isinstance(c, AxesImage)]
    drawn = np.ma.filled(image.get_array(), 0)
    assert drawn.shape == (98, 98) and drawn.sum() == a.substitutions.sum()
    order = [charset().char_to_label(c) for c in key_order()]
    np.testing.assert_array_equal(drawn, a.substitutions[np.ix_(order, order)])

    fig = substitutions_figure(a, top=5)
    bars = [p.get_width() for p in fig.axes[0].containers[0]]
    assert bars == [c for _, _, c in a.top_substitutions(5)]

    fig = key_rates_figure(a)
    heights = sorted(p.get_height() for p in fig.axes[0].containers[0] if p.get_height() > 0)
    rates = 100 * a.insertion_rate
    assert heights == pytest.approx(sorted(rates[np.isfinite(rates) & (rates > 0)]))
