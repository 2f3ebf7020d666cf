"""Figures of an ``EditAnalysis``: the substitution
confusion matrix, the most frequent substitutions, and per-key insertion and deletion rates.

Keys are laid out by hand and finger (``emgtf.reporting.keyboard_groups``), so confusions
inside one finger's keys sit in the blocks on the diagonal.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from emgtf.charset import charset
from emgtf.reporting.error_analysis import EditAnalysis
from emgtf.reporting.figures import new_figure, plain
from emgtf.reporting.keyboard_groups import display, key_groups, key_order


def _grouped_order() -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """Label indices in group order, and (group, first, last + 1) positions in that order."""
    cs = charset()
    order = np.asarray([cs.char_to_label(c) for c in key_order()])
    spans, start = [], 0
    for name, keys in key_groups():
        spans.append((name, start, start + len(keys)))
        start += len(keys)
    return order, spans


def _key_ticks(ax, axis: str, order: np.ndarray, fontsize: float = 5.5) -> None:
    names = [plain(display(charset().chars[i])) for i in order]
    ticks = np.arange(len(order))
    if axis == "x":
        ax.set_xticks(ticks, names, fontsize=fontsize, rotation=90)
    else:
        ax.set_yticks(ticks, names, fontsize=fontsize)


def confusion_figure(analysis: EditAnalysis, *, title: str | None = None) -> Figure:
    """Heat map of substitution counts: rows the typed (target) key, columns the decoded key,
    both in hand/finger order, with the finger groups marked. Zero cells are left white; the
    colour scale is a square root so that rare confusions still show."""
    order, spans = _grouped_order()
    matrix = analysis.substitutions[np.ix_(order, order)]
    fig = new_figure(12.5, 11.5, layout="constrained")
    ax = fig.subplots()
    shown = np.ma.masked_equal(matrix, 0)
    top = max(1, int(matrix.max()))
    image = ax.imshow(shown, cmap="viridis", norm=PowerNorm(0.5, vmin=0, vmax=top),
                      interpolation="nearest", aspect="equal")
    ax.set_facecolor("white")
    for _, start, _ in spans[1:]:
        ax.axhline(start - 0.5, color="0.6", linewidth=0.6)
        ax.axvline(start - 0.5, color="0.6", linewidth=0.6)
    _key_ticks(ax, "x", order)
    _key_ticks(ax, "y", order)
    secondary = ax.secondary_xaxis("top")
    secondary.set_xticks([(a + b - 1) / 2 for _, a, b in spans], [n for n, _, _ in spans],
                         fontsize=7, rotation=45, ha="left")
    secondary.tick_params(length=0)
    right = ax.secondary_yaxis("right")
    right.set_yticks([(a + b - 1) / 2 for _, a, b in spans], [n for n, _, _ in spans], fontsize=7)
    right.tick_params(length=0)
    ax.set_xlabel("decoded key")
    ax.set_ylabel("typed key")
    total = int(matrix.sum())
    ax.set_title(plain(title or "substitutions") + f" ({total} substitutions)", fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.6, pad=0.06, label="count")
    return fig


def substitutions_figure(analysis: EditAnalysis, *, top: int = 20, title: str | None = None) -> Figure:
    """Bars of the ``top`` most frequent substitutions, "typed -> decoded", most frequent first."""
    pairs = analysis.top_substitutions(top)
    fig = new_figure(7, 1.2 + 0.28 * max(1, len(pairs)), layout="constrained")
    ax = fig.subplots()
    if not pairs:
        ax.text(0.5, 0.5, "no substitutions", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        names = [plain(f"{display(t)} \u2192 {display(p)}") for t, p, _ in pairs]
        counts = [c for _, _, c in pairs]
        y = np.arange(len(pairs))[::-1]
        ax.barh(y, counts, color="C3")
        ax.set_yticks(y, names, fontsize=8)
        for yy, c in zip(y, counts):
            ax.text(c, yy, f" {c}", va="center", fontsize=7)
        ax.set_xlabel("count")
        ax.set_xlim(0, max(counts) * 1.15)
        ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(plain(title or f"top {top} substitutions (typed \u2192 decoded)"), fontsize=10)
    return fig


def key_rates_figure(analysis: EditAnalysis, *, title: str | None = None) -> Figure:
    """Per key (hand/finger order, finger groups shaded): the insertion rate (typed keys the
    decoding missed, per typed occurrence) and the deletion rate (decoded keys that were not
    typed, per decoded occurrence). Keys that never occur on that side have no bar."""
    order, spans = _grouped_order()
    fig = new_figure(15, 6.5, layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    panels = (
        (analysis.insertion_rate, analysis.insertions, analysis.target_counts, "C0",
         "insertions: typed keys the decoding missed ({} of {} typed)"),
        (analysis.deletion_rate, analysis.deletions, analysis.prediction_counts, "C1",
         "deletions: decoded keys that were not typed ({} of {} decoded)"),
    )
    x = np.arange(len(order))
    for ax, (rates, events, counts, colour, name) in zip(axes, panels):
        values = 100.0 * rates[order]
        for i, (_, start, end) in enumerate(spans):
            if i % 2:
                ax.axvspan(start - 0.5, end - 0.5, color="0.93", zorder=0)
        present = np.isfinite(values)
        ax.bar(x[present], values[present], color=colour, width=0.8)
        # A dot on every key that occurs, so a rate of 0 is told apart from a key never seen.
        ax.plot(x[present], values[present], "o", color=colour, markersize=2.5)
        ax.set_ylabel("%")
        ax.set_ylim(0, 105)
        ax.set_title(name.format(int(events.sum()), int(counts.sum())), fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_xlim(-0.5, len(order) - 0.5)
    _key_ticks(axes[1], "x", order, fontsize=6)
    for name, start, end in spans:
        axes[0].text((start + end - 1) / 2, 102, name, ha="center", va="top", fontsize=7, color="0.3")
    if title:
        fig.suptitle(plain(title), fontsize=10)
    return fig


def val_confusion_image(pairs, epoch: int) -> tuple[np.ndarray, str]:
    """The confusion matrix of ``pairs`` ((prediction, target) of validation windows) after
    ``epoch`` (1-based) as a (height, width, 3) uint8 image, and its caption: what the TensorBoard
    and W&B loggers show."""
    from emgtf.reporting.error_analysis import analyze_edits
    from emgtf.reporting.figures import to_rgb

    predictions, targets = zip(*pairs)
    title = f"substitutions in {len(pairs)} val windows, epoch {epoch}"
    return to_rgb(confusion_figure(analyze_edits(predictions, targets), title=title)), title
