"""emgtf: decode typed text from wrist surface EMG (Meta's emg2qwerty task) with Keras 3.

Modules: ``charset`` (labels), ``data`` (session files, splits, the tf.data pipeline), ``synth``
(synthetic sessions), ``features`` (spectrogram layers), ``models`` (the model zoo), ``metrics``
(CER), ``decode`` (CTC decoders), and the entry points ``fit``, ``evaluate``, ``tune``, ``export``,
``transcribe``, ``inspect``.
"""

__version__ = "0.1.0"

SAMPLE_RATE = 2000  # Hz, both wristbands
NUM_BANDS = 2  # left, right
NUM_CHANNELS = 16  # electrodes per band
