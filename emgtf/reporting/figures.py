"""Training-curve figures: loss, val CER/IER/DER/SER and learning rate per epoch; best CER per run.

Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, made without pyplot: no GUI
backend is ever chosen, whatever ``MPLBACKEND`` says, so they draw on machines without a display
and leave the pyplot state of a notebook alone. ``save`` writes PNG and SVG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from emgtf.reporting.runs import LOSS_COLUMNS, LR_COLUMN

FORMATS = ("png", "svg")
DPI = 110


def new_figure(width: float, height: float, **kwargs) -> Figure:
    """A figure of ``width`` x ``height`` inches with an Agg canvas attached."""
    fig = Figure(figsize=(width, height), **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, stem: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Writes ``stem.png`` and ``stem.svg`` (or ``formats``); returns the paths."""
    paths = []
    for fmt in formats:
        path = Path(f"{stem}.{fmt}")
        # No date in the SVG metadata: the same figure gives the same file.
        metadata = {"Date": None} if fmt == "svg" else None
        fig.savefig(path, format=fmt, dpi=DPI, metadata=metadata)
        paths.append(path)
    return paths


def to_rgb(fig: Figure) -> np.ndarray:
    """The rendered figure as a (height, width, 3) uint8 array, e.g. for ``wandb.Image``."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def plain(text: str) -> str:
    """Text matplotlib shows as written: ``$`` would otherwise start mathtext."""
    return text.replace("$", r"\$")


def _series(history: Sequence[Mapping], column: str) -> tuple[list, list]:
    points = [(r["epoch"], float(r[column])) for r in history
              if isinstance(r.get(column), (int, float)) and math.isfinite(r[column])]
    return [p[0] for p in points], [p[1] for p in points]


PANELS = (
    ("loss (CTC)", LOSS_COLUMNS),
    ("val CER (%)", ("val/CER",)),
    ("val IER (%)", ("val/IER",)),
    ("val DER (%)", ("val/DER",)),
    ("val SER (%)", ("val/SER",)),
    ("learning rate (first step of the epoch)", (LR_COLUMN,)),
)


def curves_figure(histories: Mapping[str, Sequence[Mapping]], *, title: str | None = None) -> Figure:
    """Loss (train solid, val dashed), val CER, IER, DER, SER and learning rate per epoch.

    ``histories``: run label -> history rows (``epoch`` plus history.csv columns); several runs
    are overlaid, one colour each, with a legend below the panels. Missing columns leave gaps.
    """
    labels = list(histories)
    legend_rows = len(labels) if len(labels) > 1 else 0
    fig = new_figure(13, 7 + 0.22 * legend_rows, layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    colours = [f"C{i % 10}" for i in range(len(labels))]
    run_lines = {}  # label -> the run's first line, for the figure legend
    for ax, (name, columns) in zip(axes, PANELS):
        for label, colour in zip(labels, colours):
            for column in columns:
                epochs, values = _series(histories[label], column)
                if not epochs:
                    continue
                style = "--" if column == "val/loss" else "-"
                marker = "o" if len(epochs) <= 30 else None
                (line,) = ax.plot(epochs, values, style, color=colour, marker=marker, markersize=3)
                if label not in run_lines:
                    line.set_label(plain(label))
                    run_lines[label] = line
        ax.set_title(name, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.set_xlabel("epoch")
    rates = [v for h in histories.values() for v in _series(h, LR_COLUMN)[1]]
    if rates and min(rates) > 0 and max(rates) / min(rates) > 50:
        axes[-1].set_yscale("log")  # the warm-up starts at 1e-8: a linear axis would hide it
    proxies = [axes[0].plot([], [], "k" + s, label=n)[0] for s, n in (("-", "train"), ("--", "val"))]
    axes[0].legend(handles=proxies, fontsize=8)
    if legend_rows:
        fig.legend(handles=[run_lines[k] for k in labels if k in run_lines], loc="outside lower center", ncol=1, fontsize=8, frameon=False)
    if title:
        fig.suptitle(plain(title))
    return fig


def figures_for_history(history: Sequence[Mapping], *, label: str | None = None) -> dict[str, Figure]:
    """Figures of one run's history so far, by name, for a TensorBoard or W&B callback to log
    (``{"curves": Figure}``; see ``curves_figure``). ``history``: rows as in history.csv."""
    return {"curves": curves_figure({label or "run": list(history)}, title=label)}


def best_cer_figure(labels: Sequence[str], best_val: Sequence[float | None],
                    test: Sequence[float | None]) -> Figure:
    """Horizontal bars, per run: best val CER and test CER (%); a missing value gets no bar and
    an "n/a" note. Runs are drawn top to bottom in the order given."""
    n = len(labels)
    fig = new_figure(10, 1.2 + 0.55 * n, layout="constrained")
    ax = fig.subplots()
    y = np.arange(n)[::-1]
    height = 0.38
    for offset, values, name, colour in ((height / 2, best_val, "best val CER", "C0"),
                                         (-height / 2, test, "test CER", "C1")):
        shown = [(yy, v) for yy, v in zip(y, values) if v is not None and math.isfinite(v)]
        ax.barh([yy + offset for yy, _ in shown], [v for _, v in shown], height, color=colour, label=name)
        for yy, v in zip(y, values):
            text = "n/a" if v is None or not math.isfinite(v) else f"{v:.2f}"
            ax.text(0 if text == "n/a" else v, yy + offset, f" {text}", va="center", fontsize=8)
    ax.set_yticks(y, [plain(label) for label in labels], fontsize=8)
    ax.set_xlabel("CER (%)")
    finite = [v for v in (*best_val, *test) if v is not None and math.isfinite(v)]
    ax.set_xlim(0, max([1.0, *finite]) * 1.15)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("best val CER and test CER per run", fontsize=10)
    return fig
