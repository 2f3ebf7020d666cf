"""The figure functions on synthetic arrays: the alignment view of one session, the history
figures a logging callback can log, and the confusion matrix W&B receives as an image."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from emgtf.charset import charset
from emgtf.errors import EmgtfError
from emgtf.reporting.alignment import alignment_figure, greedy_path
from emgtf.reporting.figures import figures_for_history, save, to_rgb

FRAME_RATE = 125.0
STRIDE = 4  # emissions at 125 / 4 frames/s, as a 4x-subsampling model emits them


def synthetic_session(keys: str = "hi there", seconds: float = 4.0, seed: int = 0):
    """A log spectrogram with a burst in the left band at each keystroke, and log-probs that
    emit each key at the emission frame of its press (blank elsewhere)."""
    cs = charset()
    rng = np.random.default_rng(seed)
    frames = int(seconds * FRAME_RATE)
    spec = rng.normal(0.5, 1.0, (frames, 2, 16, 33))
    key_times = np.linspace(0.4, seconds - 0.4, len(keys))
    emissions = frames // STRIDE
    logits = np.full((emissions, cs.num_classes), -8.0)
    logits[:, cs.blank] = 4.0
    for key, t in zip(keys, key_times):
        f = int(t * FRAME_RATE)
        spec[f - 4:f + 4, 0, :, 4:14] += 3.0
        logits[int(t * FRAME_RATE / STRIDE), cs.blank] = -8.0
        logits[int(t * FRAME_RATE / STRIDE), cs.char_to_label(key)] = 4.0
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return spec, log_probs, key_times


def texts(ax) -> list[tuple[float, str]]:
    return [(t.get_position()[0], t.get_text()) for t in ax.get_children()
            if isinstance(t, Text) and t.get_text().strip() and t.get_position()[1] in (0, 1)]


def test_alignment_view_of_synthetic_arrays(tmp_path):
    keys = "hi there"
    spec, log_probs, key_times = synthetic_session(keys)
    frames, decoded = greedy_path(log_probs)
    assert decoded == keys
    fig = alignment_figure(spec, log_probs, key_times, keys, emission_rate=FRAME_RATE / STRIDE, title="synthetic")
    spec_left, spec_right, probs, key_ax = fig.axes[:4]
    band = spec_left.get_images()[0].get_array()
    np.testing.assert_allclose(band, spec[:, 0].mean(axis=1).T)  # bins over time, mean of the electrodes
    rows = [t.get_text() for t in probs.get_yticklabels()]
    assert rows[0] == "blank" and sorted(rows[1:]) == sorted(set(keys.replace(" ", "")) | {"space"})
    shown = texts(key_ax)
    typed = [(x, s) for x, s in shown if s and x in key_times]
    assert [s for _, s in typed] == [k if k != " " else "space" for k in keys]
    decoded_at = sorted(x for x, s in shown if x not in key_times)
    np.testing.assert_allclose(decoded_at, frames / (FRAME_RATE / STRIDE))
    # Each decoded key sits within one emission frame of its keystroke.
    assert np.all(np.abs(np.asarray(decoded_at) - key_times) <= STRIDE / FRAME_RATE)
    png, svg = save(fig, tmp_path / "alignment")
    assert matplotlib.image.imread(png).shape[2] in (3, 4)
    ElementTree.parse(svg)


def test_alignment_view_of_a_decoding_other_than_greedy():
    spec, log_probs, key_times = synthetic_session("abc")
    fig = alignment_figure(spec[:, :, 0], log_probs, key_times, "abc", decoded="abd",
                           emission_rate=FRAME_RATE / STRIDE)  # (frames, 2, bins) works too
    assert any("a b d" in s for _, s in texts(fig.axes[3]))  # shown, but without times
    fig = alignment_figure(spec, log_probs, key_times, "abc", decoded="ab", decoded_times=[0.5, 1.0],
                           emission_rate=FRAME_RATE / STRIDE)
    assert [(x, s) for x, s in texts(fig.axes[3]) if x in (0.5, 1.0)] == [(0.5, "a"), (1.0, "b")]


def test_alignment_view_rejects_arrays_of_the_wrong_shape():
    spec, log_probs, key_times = synthetic_session("ab")
    with pytest.raises(EmgtfError, match="spectrogram must be"):
        alignment_figure(spec[:, 0], log_probs, key_times, "ab")
    with pytest.raises(EmgtfError, match="log_probs must be"):
        alignment_figure(spec, log_probs[:, :50], key_times, "ab")
    with pytest.raises(EmgtfError, match="3 key times for 2 keys"):
        alignment_figure(spec, log_probs, [0.1, 0.2, 0.3], "ab")


def test_figures_for_history_draw_the_rows():
    history = [
        {"epoch": 1, "train/loss": 8.0, "val/loss": 3.5, "val/CER": 100.0, "val/IER": 0.0, "val/DER": 100.0,
         "val/SER": 0.0, "lr": 1e-8},
        {"epoch": 2, "train/loss": 2.1, "val/loss": 1.8, "val/CER": 67.8, "val/IER": 0.1, "val/DER": 62.9,
         "val/SER": 4.8, "lr": 1.8e-3},
        {"epoch": 3, "train/loss": 1.4},  # an epoch whose validation is missing: a gap, no error
    ]
    figures = figures_for_history(history, label="run")
    assert set(figures) == {"curves"} and isinstance(figures["curves"], Figure)
    axes = figures["curves"].axes
    titles = [ax.get_title() for ax in axes]
    cer = axes[titles.index("val CER (%)")].get_lines()[0]
    assert list(cer.get_xdata()) == [1, 2] and list(cer.get_ydata()) == [100.0, 67.8]
    loss = [line for line in axes[0].get_lines() if len(line.get_xdata())]
    assert [list(line.get_ydata()) for line in loss] == [[8.0, 2.1, 1.4], [3.5, 1.8]]
    lr = axes[titles.index("learning rate (first step of the epoch)")]
    assert lr.get_yscale() == "log"  # the warm-up starts at 1e-8
    image = to_rgb(figures["curves"])
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def test_wandb_logger_logs_the_confusion_matrix_as_an_image(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    from emgtf.training import wandb_logging
    from emgtf.training.callbacks import RunState

    for key, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
                       "WANDB_CONFIG_DIR": str(tmp_path / "config"), "WANDB_CACHE_DIR": str(tmp_path / "cache"),
                       "HOME": str(tmp_path / "home")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    run = wandb.init(project="emgtf-test", mode="offline", dir=str(tmp_path))
    state = RunState(run_dir=tmp_path)
    state.samples = [("helo wrld", "hello world"), ("hxllo", "hello")]
    logger = wandb_logging.WandbLogger(run, state)
    logger.on_epoch_end(0, {"loss": 1.0, "val_CER": 30.0})
    logger.on_train_end()
    assert not logger.failed
    folder = run.dir
    logger.close()
    images = list((tmp_path.glob("wandb/offline-run-*/files/media/images/val/confusion*.png")))
    assert len(images) == 1, folder
    assert matplotlib.image.imread(images[0]).shape[0] > 500
