"""Inference: loading checkpoints, running any model on raw EMG, and scoring what it decodes.

- ``checkpoints``: ``.keras`` checkpoints;
- ``runners``: one way to run a Keras model or an export folder;
- ``export_folder``: reading an export folder (``export.json``, the streaming
  step's layout), for every reader of one (``emgtf.export`` writes it);
- ``evaluation``: validation windows and whole-session evaluation;
- ``chunked``: whole sessions in chunks, equal to one forward pass where the
  layers' reach allows (bounded memory);
- ``transcription``: one session, in chunks, to typed text;
- ``streaming``: the streaming decoder, keys as a live stream of chunks arrives;
- ``steps``: the step adapters it runs (a Keras model's incremental step, a
  TFLite export's step).
"""
