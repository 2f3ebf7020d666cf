"""Export: turns a ``.keras`` checkpoint into a model that other programs run on raw EMG, and writes
``export.json`` beside it with what a consumer needs to decode its output without emgtf.

Formats (all in inference mode: no SpecAugment, no dropout, BatchNorm on its running statistics):

- ``saved_model``: a TensorFlow SavedModel in ``out/`` itself; loading it needs TensorFlow only
  (every emgtf layer is traced into the graph). Signatures:

  - ``serving_default(emg)``: ``emg`` float32 ``[batch, samples, 2, 16]`` (raw EMG, left band
    first, 2 kHz) -> ``log_probs`` float32 ``[batch, frames, 99]`` (natural log) and
    ``emission_lengths`` int32 ``[batch]`` (every element taken to be ``samples`` long);
  - ``with_lengths(emg, emg_lengths)``: the same for a zero-padded batch, ``emg_lengths`` int32
    ``[batch]`` the true length of each element; ``emission_lengths`` says how many frames of
    each element are its own. (Recurrent and attention layers still see the padding, so a padded
    element's log-probabilities can differ from running it alone; emgtf.evaluate uses batch 1.)

  Inputs are checked in the graph (``tf.debugging`` asserts): ``emg`` must be rank 4 with the
  last dimensions (2, 16) and dtype float32 (the signature itself enforces those), and
  ``emg_lengths`` must be rank 1 with one entry per element of ``emg``'s batch, each in
  ``0..samples``. A violation raises ``tf.errors.InvalidArgumentError`` naming the input and the
  rule, e.g. "emg_lengths must have one length per element of the emg batch".

- ``keras``: ``out/model.keras``, the model saved again without optimizer state (needs emgtf).
- ``onnx``: ``out/model.onnx`` through tf2onnx: input ``emg``, outputs ``log_probs`` and
  ``emission_lengths`` as in ``serving_default``. tf2onnx 1.17 cannot convert the spectrogram
  layer's RFFT (it takes an RFFT only when ``abs`` follows it, and that path leaves a ComplexAbs op
  that onnxruntime rejects), so the ONNX graph computes the same power spectrum as a DFT by matrix
  products; the rest of the network is traced unchanged. Ops tf2onnx cannot convert at the chosen
  ``onnx_opset`` end the command with one line naming them (exit 2), and no files.

``export.json`` records the charset (98 keys in label order, blank 98), the sample rate, the
spectrogram frames (``n_fft``, ``hop_length``, 125 frames/s) and the emission length rule (e.g.
``frames - 124`` for the TDS baseline), the family, and the training config found beside the
checkpoint (``config.yaml`` as ``python -m emgtf.fit`` writes it). After writing, the export is run
on a probe signal and compared with the checkpoint (``verify=false`` skips that); the largest
difference goes into ``export.json``. Nothing is written over: ``out`` must not exist or be empty.
"""

__all__ = ["FORMATS", "METADATA_FILE", "export_checkpoint", "export_model", "read_metadata"]


def __getattr__(name):
    # Loaded on use: ``python -m emgtf.export`` imports this package before its command can set up
    # the process (emgtf.cli.configure_process), and the exporter imports Keras.
    if name in ("export_checkpoint", "export_model"):
        from emgtf.export import exporter

        return getattr(exporter, name)
    if name in ("FORMATS", "METADATA_FILE", "read_metadata"):
        from emgtf.export import metadata

        return getattr(metadata, name)
    raise AttributeError(f"module 'emgtf.export' has no attribute {name!r}")
