"""Figures of the validation split as TensorBoard images (``logger.tensorboard_images``).

After every validated epoch the substitution confusion matrix of the whole validation split (all
its windows, greedy decoding: the decodings behind ``val_CER``) is drawn as in ``emgtf.report``
and written as an image, tag ``val/confusion``, to ``<run_dir>/tensorboard/validation``, at the
step of Keras's own epoch scalars (the 0-based epoch). The W&B logger draws the same figure.

A figure must never cost a training run: a failure is warned about once and the images stop.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import keras

from emgtf.errors import first_line

CONFUSION_TAG = "val/confusion"


class TensorBoardFigures(keras.callbacks.Callback):
    """Writes the validation confusion matrix of every validated epoch as a TensorBoard image.

    Reads ``state.val_pairs`` (every validation window's (prediction, target), set by the
    validation callback), so it must come after it.
    """

    def __init__(self, log_dir, state):
        super().__init__()
        self.log_dir = Path(log_dir) / "validation"
        self.state = state
        self.writer = None
        self.failed = False

    def on_epoch_end(self, epoch, logs=None):
        pairs = getattr(self.state, "val_pairs", None)
        if self.failed or self.state.diverged or not pairs:
            return
        try:
            self._write(epoch, pairs)
        except Exception as e:  # matplotlib or the event writer: warn, keep training
            self.failed = True
            warnings.warn(f"TensorBoard images failed ({first_line(e)}); training goes on without them",
                          stacklevel=2)

    def _write(self, epoch: int, pairs) -> None:
        import tensorflow as tf

        from emgtf.reporting.error_figures import val_confusion_image

        image, title = val_confusion_image(pairs, epoch + 1)
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(str(self.log_dir))
        with self.writer.as_default():
            tf.summary.image(CONFUSION_TAG, image[None], step=epoch, description=title)
        self.writer.flush()

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()
            self.writer = None
