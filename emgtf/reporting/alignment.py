"""The alignment view of a few seconds of one session: what the bands recorded, when keys were
pressed, what the model emitted frame by frame, and what the decoder made of it.

It takes plain numpy arrays, so the evaluation path (or a notebook) can call it with a model's
output for a slice of a session; nothing here runs a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from emgtf.charset import charset
from emgtf.decoding.onsets import path_onsets
from emgtf.errors import EmgtfError
from emgtf.reporting.figures import new_figure, plain
from emgtf.reporting.keyboard_groups import display, key_order

BANDS = ("left band", "right band")


def greedy_path(log_probs: np.ndarray) -> tuple[np.ndarray, str]:
    """(onset frame, key) of each key greedy CTC decoding emits (``emgtf.decoding.onsets``:
    the frames where the argmax is a key other than blank and differs from the previous frame's
    argmax). Returns (frames, keys)."""
    cs = charset()
    best = np.asarray(log_probs).argmax(axis=-1)
    frames = path_onsets(best, cs.blank)
    return frames, cs.labels_to_str(best[frames])


def _band_images(spectrogram: np.ndarray) -> np.ndarray:
    """(bands, bins, frames): the log spectrogram averaged over each band's electrodes."""
    spec = np.asarray(spectrogram, dtype=np.float64)
    if spec.ndim == 4:  # (frames, bands, electrodes, bins), the LogSpectrogram layer's layout
        spec = spec.mean(axis=2)
    if spec.ndim != 3 or spec.shape[1] != 2:
        raise EmgtfError(f"alignment view: the spectrogram must be (frames, 2, 16, bins) or (frames, 2, "
                         f"bins), got shape {tuple(np.shape(spectrogram))}")
    return spec.transpose(1, 2, 0)


def alignment_figure(
    spectrogram: np.ndarray,
    log_probs: np.ndarray,
    key_times: Sequence[float],
    keys: str,
    decoded: str | None = None,
    decoded_times: Sequence[float] | None = None,
    *,
    frame_rate: float = 125.0,
    emission_rate: float | None = None,
    emission_start: float = 0.0,
    start: float = 0.0,
    min_prob: float = 0.05,
    title: str | None = None,
) -> Figure:
    """Spectrogram of both bands, keystrokes, per-frame key probabilities and decoded keys.

    Args:
        spectrogram: log spectrogram frames, (frames, 2, 16, bins) or already averaged over the
            electrodes, (frames, 2, bins); frame ``i`` is at ``start + i / frame_rate`` seconds.
        log_probs: the model's per-frame log-probabilities (emissions, 99), blank last; emission
            ``j`` is at ``emission_start + j / emission_rate`` (default rate: ``frame_rate``).
        key_times, keys: press time (s, same clock as ``start``) and key of each keystroke.
        decoded: the decoded keys; None = greedy decoding of ``log_probs``.
        decoded_times: the time of each decoded key; None = the frames where greedy decoding emits
            them (when ``decoded`` is the greedy decoding), else the keys are shown without times.
        min_prob: keys whose probability never reaches it in the window get no row.
    Returns:
        A figure of four panels sharing the time axis: left band, right band (frequency bin over
        time, keystrokes marked), key probabilities (blank on top, then the keys that occur, in
        hand/finger order) and the typed keys above the decoded ones.
    """
    cs = charset()
    bands = _band_images(spectrogram)
    probs = np.exp(np.asarray(log_probs, dtype=np.float64))
    if probs.ndim != 2 or probs.shape[1] != cs.num_classes:
        raise EmgtfError(f"alignment view: log_probs must be (frames, {cs.num_classes}), got shape "
                         f"{tuple(np.shape(log_probs))}")
    key_times = np.asarray(key_times, dtype=np.float64).reshape(-1)
    if len(key_times) != len(keys):
        raise EmgtfError(f"alignment view: {len(key_times)} key times for {len(keys)} keys")
    emission_rate = float(emission_rate or frame_rate)
    frames = bands.shape[2]
    end = start + frames / frame_rate
    emission_t = emission_start + np.arange(len(probs)) / emission_rate

    if decoded_times is None:
        path_frames, path_keys = greedy_path(log_probs)
        if decoded is None or decoded == path_keys:
            decoded, decoded_times = path_keys, emission_t[path_frames]
    elif len(decoded_times) != len(decoded or ""):
        raise EmgtfError(f"alignment view: {len(decoded_times)} decoded times for {len(decoded or '')} keys")

    fig = new_figure(14, 9, layout="constrained")
    axes = fig.subplots(4, 1, sharex=True, height_ratios=(2, 2, 3, 1))
    inside = (key_times >= start) & (key_times <= end)
    extent = (start, end, -0.5, bands.shape[1] - 0.5)
    for ax, image, name in zip(axes[:2], bands, BANDS):
        shown = ax.imshow(image, origin="lower", aspect="auto", extent=extent, cmap="magma",
                          interpolation="nearest")
        for t in key_times[inside]:
            ax.axvline(t, color="cyan", linewidth=0.7, alpha=0.8)
        ax.set_ylabel("bin")
        ax.set_title(f"log spectrogram, {name} (mean over electrodes)", fontsize=9)
        fig.colorbar(shown, ax=ax, pad=0.01, label="log10 power")

    order = [cs.char_to_label(c) for c in key_order()]
    rows = [cs.blank] + [k for k in order if probs[:, k].max() >= min_prob]
    names = ["blank"] + [plain(display(cs.chars[k])) for k in rows[1:]]
    half = 0.5 / emission_rate
    heat = axes[2].imshow(probs[:, rows].T, origin="upper", aspect="auto", cmap="Greys", vmin=0, vmax=1,
                          extent=(emission_t[0] - half if len(probs) else start,
                                  emission_t[-1] + half if len(probs) else end, len(rows) - 0.5, -0.5),
                          interpolation="nearest")
    axes[2].set_yticks(np.arange(len(rows)), names, fontsize=7)
    axes[2].set_title(f"per-frame probabilities (keys reaching {min_prob:g})", fontsize=9)
    fig.colorbar(heat, ax=axes[2], pad=0.01, label="probability")

    ax = axes[3]
    ax.set_ylim(-0.5, 1.5)
    ax.set_yticks([1, 0], ["typed", "decoded"], fontsize=8)
    for t, k in zip(key_times, keys):
        if start <= t <= end:
            ax.text(t, 1, plain(display(k)), ha="center", va="center", fontsize=8, color="C0")
    if decoded_times is not None:
        for t, k in zip(decoded_times, decoded):
            if start <= t <= end:
                ax.text(t, 0, plain(display(k)), ha="center", va="center", fontsize=8, color="C3")
    else:  # a decoding whose key times are unknown (e.g. beam search): the keys in a row
        keys_text = plain(" ".join(display(k) for k in decoded))
        ax.text(start, 0, f" {keys_text}", ha="left", va="center", fontsize=8, color="C3")
    ax.set_xlabel("time (s)")
    ax.set_xlim(start, end)
    ax.grid(True, axis="x", alpha=0.3)
    if title:
        fig.suptitle(plain(title), fontsize=10)
    return fig


@dataclass
class AlignmentView:
    """What ``alignment_figure`` draws for one session (see its arguments), on one clock:
    seconds from the session's first sample."""

    session: str
    spectrogram: np.ndarray
    log_probs: np.ndarray
    key_times: np.ndarray
    keys: str
    decoded: str | None
    decoded_times: Sequence[float] | None
    frame_rate: float
    emission_rate: float
    emission_start: float
    start: float
    path: Path | None = None
    window: tuple[float, float] | None = None  # the seconds asked for (the frames cover about them)

    @property
    def end(self) -> float:
        return self.start + len(self.spectrogram) / self.frame_rate

    def describe(self) -> str:
        """``session NAME, A-B s``: the session and the seconds shown."""
        start, end = self.window or (self.start, self.end)
        return f"session {self.session}, {start:.2f}-{end:.2f} s"

    def caption(self) -> str:
        return (f"alignment view of {self.describe()}: log spectrogram of both bands with the keystrokes, "
                "per-frame key probabilities, typed and decoded keys")

    def figure(self) -> Figure:
        return alignment_figure(
            self.spectrogram, self.log_probs, self.key_times, self.keys, self.decoded, self.decoded_times,
            frame_rate=self.frame_rate, emission_rate=self.emission_rate, emission_start=self.emission_start,
            start=self.start, title=f"session {self.session}",
        )
