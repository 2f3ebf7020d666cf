"""The typist's timing statistics: their definitions on hand-made and real timelines, and the
default synthetic typist against the real data's figures."""

from __future__ import annotations

import numpy as np
import pytest

from emgtf.data import bids
from emgtf.synth import SynthConfig
from emgtf.synth.dataset import typist_statistics
from emgtf.synth.knobs import V1_TYPING
from emgtf.synth.timing import REAL, comparison_table, typing_statistics
from tests.helpers import FIXTURES

NM = FIXTURES / "nm000104"


def test_definitions_on_a_hand_made_timeline():
    keys = [("a", 0.0, 0.1), ("b", 0.2, 0.25), ("Key.backspace", 0.5, 0.6), ("c", 1.5, 1.58)]
    one = [{"key": k, "start": s, "end": e} for k, s, e in keys]
    two = [{"key": "x", "start": 10.0, "end": 10.12}, {"key": "y", "start": 10.3, "end": 10.4}]
    stats = typing_statistics([(one, 2.0), (two, 1.0)])
    assert (stats.sessions, stats.presses) == (2, 6)
    assert stats.presses_per_second.median == pytest.approx(2.0)  # 4 / 2 s and 2 / 1 s
    # Intervals pooled: 0.2, 0.3, 1.0 and 0.3 (none across sessions).
    assert stats.inter_press_s.median == pytest.approx(0.3)
    assert stats.hold_s.median == pytest.approx(np.median([0.1, 0.05, 0.1, 0.08, 0.12, 0.1]))
    assert stats.backspace_share.median == pytest.approx(0.125)  # 1/4 and 0


@pytest.mark.skipif(not NM.is_dir(), reason="needs ../shared/fixtures/nm000104")
def test_real_sessions_agree_with_the_published_figures():
    """User 89335547's sessions, measured by the same function, lie in the ranges the data facts
    give for that user (4,375-4,695 presses, 4.05-5.35 presses a second, 1.9-5.7 % backspace)."""
    for events in sorted(NM.glob("sub-89335547/ses-*/emg/*_events.tsv")):
        keystrokes, _ = bids.read_events(events)
        duration, _ = bids.read_emg_json(events.with_name(events.name.replace("_events.tsv", "_emg.json")))
        stats = typing_statistics([(keystrokes, duration)])
        assert 4375 <= stats.presses <= 4695
        assert 4.05 <= stats.presses_per_second.median <= 5.35
        assert 0.019 <= stats.backspace_share.median <= 0.057
        assert 0.076 <= stats.hold_s.median <= 0.149 and 0.076 <= stats.inter_press_s.median <= 0.466


def _close_to_real(stats) -> list[str]:
    """The figures of ``stats`` that miss the real data's by more than the tolerance."""
    checks = {
        "presses per second": (stats.presses_per_second.median, REAL.presses_per_second.median, 0.10),
        "inter-press median": (stats.inter_press_s.median, REAL.inter_press_s.median, 0.08),
        "inter-press p10": (stats.inter_press_s.p10, REAL.inter_press_s.p10, 0.15),
        "inter-press p90": (stats.inter_press_s.p90, REAL.inter_press_s.p90, 0.25),
        "hold median": (stats.hold_s.median, REAL.hold_s.median, 0.08),
        "hold p10": (stats.hold_s.p10, REAL.hold_s.p10, 0.15),
        "hold p90": (stats.hold_s.p90, REAL.hold_s.p90, 0.15),
        "backspace share": (stats.backspace_share.median, REAL.backspace_share.median, 0.15),
    }
    return [name for name, (got, want, tol) in checks.items() if abs(got - want) > tol * want]


def test_default_typist_types_like_the_real_data():
    stats = typist_statistics(users=32, sessions=1, minutes=5, seed=0)
    assert _close_to_real(stats) == []
    # The first generator's typist did not (too regular, too few corrections): the check can fail.
    old = typist_statistics(users=12, sessions=1, minutes=4, seed=0, config=SynthConfig(**V1_TYPING))
    assert {"inter-press p10", "inter-press p90", "backspace share"} <= set(_close_to_real(old))


def test_comparison_table_sets_real_and_synthetic_side_by_side():
    stats = typing_statistics([([{"key": "a", "start": 0.0, "end": 0.1}, {"key": "b", "start": 0.2, "end": 0.3}], 1.0)])
    table = comparison_table(stats).splitlines()
    assert table[0] == "| statistic | real (1,135 sessions) | synthetic (1 sessions) |"
    assert table[2] == "| presses per second (per session) | 4.43 (3.30-5.83) | 2.00 (2.00-2.00) |"
    assert table[5].startswith("| backspace share of presses (per session) | 4.0 % (90th 7.0) | 0.0 %")
