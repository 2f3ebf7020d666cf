"""Inference: loading checkpoints, running any model on raw EMG, and scoring what it decodes.

- :mod:`~emgtf.inference.checkpoints`: ``.keras`` checkpoints;
- :mod:`~emgtf.inference.runners`: one way to run a Keras model or an export folder;
- :mod:`~emgtf.inference.export_folder`: reading an export folder (``export.json``, the streaming
  step's layout), for every reader of one (:mod:`emgtf.export` writes it);
- :mod:`~emgtf.inference.evaluation`: validation windows and whole-session evaluation;
- :mod:`~emgtf.inference.chunked`: whole sessions in chunks, equal to one forward pass where the
  layers' reach allows (bounded memory);
- :mod:`~emgtf.inference.transcription`: one session, in chunks, to typed text;
- :mod:`~emgtf.inference.streaming`: the streaming decoder, keys as a live stream of chunks arrives;
- :mod:`~emgtf.inference.steps`: the step adapters it runs (a Keras model's incremental step, a
  TFLite export's step).
"""
