"""How a typist's timing is measured, for real sessions and synthetic ones alike.

The definitions (those of the statistics of the 1,135 real events files in the project's data
facts): a *press* is every logged key press, whatever the key; per session, *presses per second*
is the number of presses divided by the recording's duration and the *backspace share* the
backspace presses divided by all presses; the *inter-press interval* is the time between two
consecutive presses of a session and the *hold* a key's release minus its press, both pooled
over all sessions. Session-level figures are summarised by their median (and 10th/90th
percentiles) over sessions, pooled ones by theirs over all intervals or holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

BACKSPACE = "Key.backspace"


@dataclass(frozen=True)
class Spread:
    """Median and 10th / 90th percentiles."""

    median: float
    p10: float
    p90: float

    @classmethod
    def of(cls, values) -> "Spread":
        values = np.asarray(values, np.float64)
        if values.size == 0:
            return cls(float("nan"), float("nan"), float("nan"))
        p10, median, p90 = np.percentile(values, [10, 50, 90])
        return cls(float(median), float(p10), float(p90))


@dataclass(frozen=True)
class TypingStatistics:
    """The timing of a set of sessions (see the module docstring for the definitions)."""

    sessions: int
    presses: int
    presses_per_second: Spread  # over sessions
    inter_press_s: Spread  # pooled
    hold_s: Spread  # pooled
    backspace_share: Spread  # over sessions, a fraction


# The real data (1,135 sessions of the emg2qwerty release, its BIDS events files). Where the
# facts give no percentile it is NaN.
REAL = TypingStatistics(
    sessions=1135,
    presses=5_258_056,
    presses_per_second=Spread(4.43, 3.30, 5.83),
    inter_press_s=Spread(0.165, 0.076, 0.466),
    hold_s=Spread(0.090, 0.060, 0.149),
    backspace_share=Spread(0.040, float("nan"), 0.070),
)


def typing_statistics(sessions: Iterable[tuple[list[dict], float]]) -> TypingStatistics:
    """The statistics of ``sessions``, each ``(keystrokes, duration_s)``: keystrokes as a session
    holds them (``key``, ``start``, ``end``; any time origin) and the recording's length."""
    rates, shares, intervals, holds, count, presses = [], [], [], [], 0, 0
    for keystrokes, duration_s in sessions:
        count += 1
        if not keystrokes:
            rates.append(0.0)
            continue
        start = np.sort(np.asarray([k["start"] for k in keystrokes], np.float64))
        end = np.asarray([k["end"] for k in keystrokes], np.float64)
        hold = end - np.asarray([k["start"] for k in keystrokes], np.float64)
        presses += len(start)
        rates.append(len(start) / float(duration_s))
        shares.append(sum(k["key"] == BACKSPACE for k in keystrokes) / len(keystrokes))
        intervals.append(np.diff(start))
        holds.append(hold)
    pooled = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
    return TypingStatistics(
        sessions=count,
        presses=presses,
        presses_per_second=Spread.of(rates),
        inter_press_s=Spread.of(pooled(intervals)),
        hold_s=Spread.of(pooled(holds)),
        backspace_share=Spread.of(shares),
    )


def session_statistics(paths) -> TypingStatistics:
    """``typing_statistics`` of session files (HDF5, or BIDS sessions: see
    ``emgtf.data.EMGSession``), each over its recording's length."""
    from emgtf import SAMPLE_RATE
    from emgtf.data import EMGSession

    def read():
        for path in paths:
            with EMGSession(path) as s:
                yield s.keystrokes, len(s) / SAMPLE_RATE

    return typing_statistics(read())


def _cell(spread: Spread, scale: float, digits: int, unit: str) -> str:
    def fmt(v):
        return f"{v * scale:.{digits}f}"

    if np.isnan(spread.p10):
        return f"{fmt(spread.median)}{unit} (90th {fmt(spread.p90)})"
    return f"{fmt(spread.median)}{unit} ({fmt(spread.p10)}-{fmt(spread.p90)})"


def comparison_table(synthetic: TypingStatistics, real: TypingStatistics = REAL) -> str:
    """A Markdown table of the real and the synthetic statistics side by side (median, and 10th
    to 90th percentile in brackets)."""
    rows = [
        ("presses per second (per session)", "presses_per_second", 1.0, 2, ""),
        ("inter-press interval (s, pooled)", "inter_press_s", 1.0, 3, ""),
        ("hold (s, pooled)", "hold_s", 1.0, 3, ""),
        ("backspace share of presses (per session)", "backspace_share", 100.0, 1, " %"),
    ]
    lines = ["| statistic | real (1,135 sessions) | synthetic ({} sessions) |".format(synthetic.sessions),
             "|---|---|---|"]
    for label, field, scale, digits, unit in rows:
        lines.append(f"| {label} | {_cell(getattr(real, field), scale, digits, unit)} | "
                     f"{_cell(getattr(synthetic, field), scale, digits, unit)} |")
    return "\n".join(lines)
