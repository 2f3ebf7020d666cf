"""emgtf: decode typed text from wrist surface EMG (Meta's emg2qwerty task) with Keras 3.

Packages: ``data`` (session files, splits, the tf.data pipeline), ``synth`` (synthetic sessions),
``models`` (the model zoo and its layers), ``training`` (the loop, losses, callbacks),
``inference`` (checkpoints, running models, evaluation, transcription, streaming), ``decoding``
(CTC decoders and the character LM), ``export`` (SavedModel / .keras / ONNX / TFLite streaming
step), ``tuning`` (KerasTuner), ``reporting`` (figures and HTML pages of runs) and ``cli`` (the
commands). Modules: ``charset`` (labels), ``metrics`` (CER), ``config`` (Hydra configs),
``startup`` (how a command starts: quiet TensorFlow), ``interrupts`` (Ctrl-C), ``paths``,
``files``, ``errors``.

Importing emgtf has no side effects: process-wide settings belong to the commands
(``emgtf.startup.configure_process``). The one exception is ``python -m emgtf.<command>``,
whose settings are made here, before a command package's ``__init__`` imports Keras.
"""

from emgtf.startup import configure_for_module_run

configure_for_module_run()

__version__ = "0.1.0"

SAMPLE_RATE = 2000  # Hz, both wristbands
NUM_BANDS = 2  # left, right
NUM_CHANNELS = 16  # electrodes per band
