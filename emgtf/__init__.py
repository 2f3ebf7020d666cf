"""emgtf: decode typed text from wrist surface EMG (Meta's emg2qwerty task) with Keras 3.

Modules: ``charset`` (labels), ``data`` (session files, splits, the tf.data pipeline), ``synth``
(synthetic sessions), ``features`` (spectrogram layers), ``models`` (the model zoo), ``metrics``
(CER), ``decode`` (CTC decoders), ``lm`` (the character language model), and the entry points
``fit``, ``evaluate``, ``tune``, ``export``, ``transcribe``, ``inspect``, ``synth``, ``convert``.
"""

import os as _os

from emgtf import cli as _cli

__version__ = "0.1.0"

# Before any module imports Keras: a CLI's first line of stderr should be ours, not TensorFlow's.
if (
    _cli.entry_point() in _cli.TENSORFLOW_ENTRY_POINTS
    and _os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"
):
    _cli.quiet_tensorflow_import()

SAMPLE_RATE = 2000  # Hz, both wristbands
NUM_BANDS = 2  # left, right
NUM_CHANNELS = 16  # electrodes per band
