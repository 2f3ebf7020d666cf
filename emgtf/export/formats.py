"""Writing the export formats: SavedModel signatures, ``.keras``, and ONNX through tf2onnx."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.errors import EmgtfError, first_line
from emgtf.inference.export_folder import MODEL_FILES, STEP_SIGNATURE, StepLayout
from emgtf.models import emitted_frames
from emgtf.models.layers import POWER_FLOOR, LogSpectrogram
from emgtf.models.streaming import incremental_step


def _emg_spec():
    import tensorflow as tf

    return tf.TensorSpec([None, None, NUM_BANDS, NUM_CHANNELS], tf.float32, name="emg")


def _outputs(model, emg, log_probs, lengths) -> dict:
    import tensorflow as tf

    emitted = tf.cast(emitted_frames(model, lengths, tf.shape(log_probs)[1]), tf.int32)
    return {"log_probs": tf.cast(log_probs, tf.float32), "emission_lengths": emitted}


def _full_lengths(emg):
    import tensorflow as tf

    shape = tf.shape(emg)
    return tf.fill([shape[0]], shape[1])


def _check_inputs(emg, emg_lengths=None):
    """Readable errors for bad serving inputs, instead of a shape error deep in the graph (or, for
    lengths beyond the signal, emission lengths the log-probabilities do not have)."""
    import tensorflow as tf

    checks = [tf.debugging.assert_rank(emg, 4, message="emg must be float32 [batch, samples, 2, 16]")]
    if emg_lengths is not None:
        shape = tf.shape(emg)
        checks += [
            tf.debugging.assert_rank(emg_lengths, 1, message="emg_lengths must be int32 [batch]"),
            tf.debugging.assert_equal(tf.shape(emg_lengths)[0], shape[0],
                                      message="emg_lengths must have one length per element of the emg batch"),
            tf.debugging.assert_non_negative(emg_lengths, message="emg_lengths must be >= 0"),
            tf.debugging.assert_less_equal(emg_lengths, shape[1],
                                           message="emg_lengths must be at most the samples of emg"),
        ]
    return checks


def serving_functions(model) -> dict:
    """The SavedModel signatures as ``tf.function`` s: ``{name: (function, input_signature)}``.

    - ``serving_default(emg)``: ``emg`` float32 [batch, samples, 2, 16] (left band first);
    - ``with_lengths(emg, emg_lengths)``: also ``emg_lengths`` int32 [batch], each element's true
      length in samples (0..samples; the rest of its row is padding), one per element of ``emg``.

    Both return ``log_probs`` float32 [batch, frames, 99] and ``emission_lengths`` int32 [batch].
    The signature fixes the dtypes and the last two dimensions of ``emg``; inputs that break the
    rest (a batch of lengths that does not match emg's, a length beyond the signal) fail with a
    ``tf.errors.InvalidArgumentError`` whose message names the input and the rule.
    """
    import tensorflow as tf

    def serve(emg):
        with tf.control_dependencies(_check_inputs(emg)):
            emg = tf.identity(emg)
        return _outputs(model, emg, model(emg, training=False), _full_lengths(emg))

    def serve_with_lengths(emg, emg_lengths):
        with tf.control_dependencies(_check_inputs(emg, emg_lengths)):
            emg, emg_lengths = tf.identity(emg), tf.identity(emg_lengths)
        return _outputs(model, emg, model(emg, training=False), emg_lengths)

    lengths_spec = tf.TensorSpec([None], tf.int32, name="emg_lengths")
    return {
        "serving_default": (tf.function(serve), [_emg_spec()]),
        "with_lengths": (tf.function(serve_with_lengths), [_emg_spec(), lengths_spec]),
    }


def step_function(model, layout: StepLayout):
    """The streaming step (``emgtf.models.streaming.incremental_step``) as a ``tf.function``
    with its fixed input signature (``state``, ``chunk``) returning ``{"next_state", "log_probs"}``."""
    import tensorflow as tf

    def step(state, chunk):
        next_state, log_probs = incremental_step(model, layout, state, chunk)
        return {"next_state": next_state, "log_probs": log_probs}

    signature = [
        tf.TensorSpec([layout.state_size], tf.float32, name="state"),
        tf.TensorSpec([layout.chunk_samples, NUM_BANDS, NUM_CHANNELS], tf.float32, name="chunk"),
    ]
    return tf.function(step, input_signature=signature), signature


def write_saved_model(model, directory: Path, stream_layout=None, *, serving: bool = True) -> None:
    """The SavedModel; with a ``StepLayout`` also the
    ``stream_step`` signature (see ``emgtf.export.stream_step``); without ``serving``, that
    signature alone (what the TFLite converter reads: tracing the others costs most of the time)."""
    import keras

    functions = serving_functions(model) if serving else {}
    if stream_layout is not None:
        functions[STEP_SIGNATURE] = step_function(model, stream_layout)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (function, signature) in functions.items():
        archive.add_endpoint(name, function, input_signature=signature)
    archive.write_out(str(directory), verbose=False)


def write_keras(model, directory: Path) -> None:
    model.save(directory / MODEL_FILES["keras"])


def _log_spectrogram_layer(model):
    return next(layer for layer in model.layers if isinstance(layer, LogSpectrogram))


def onnx_function(model):
    """``tf.function`` of the model with the spectrogram's RFFT as a DFT by matrix products.

    The network after the spectrogram is the model's own graph (a Keras model from the raw input
    and the spectrogram to the output), so only the power spectrum is computed differently: the
    periodic Hann window scaled by 1 / sqrt(window energy), folded into the DFT matrices.
    """
    import keras
    import tensorflow as tf

    spectrogram = _log_spectrogram_layer(model)
    try:
        rest = keras.Model([model.input, spectrogram.output], model.output)
    except Exception as e:
        why = f"its graph cannot be cut after the spectrogram ({first_line(e)})"
        raise unsupported(model, "onnx", why) from None
    # Preprocessing before the spectrogram (a filter, a lower rate) runs as the model's own layers.
    prefix = None if spectrogram.input is model.input else keras.Model(model.input, spectrogram.input)
    n_fft, hop = spectrogram.n_fft, spectrogram.hop_length
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    window = window / np.sqrt(np.sum(window**2))
    angle = 2.0 * np.pi * np.outer(np.arange(n_fft), np.arange(n_fft // 2 + 1)) / n_fft
    # numpy, not tf.constant: an eager tensor would be captured as an extra graph input.
    cos = (window[:, None] * np.cos(angle)).astype(np.float32)
    sin = (window[:, None] * -np.sin(angle)).astype(np.float32)
    log10 = np.float32(np.log(10.0))

    def serve(emg):
        signal = emg if prefix is None else prefix(emg, training=False)
        x = tf.transpose(signal, (0, 2, 3, 1))  # (B, 2, 16, T): frames along the last axis
        frames = tf.signal.frame(x, n_fft, hop, axis=-1)  # (B, 2, 16, F, n_fft)
        real, imag = tf.linalg.matmul(frames, cos), tf.linalg.matmul(frames, sin)
        power = tf.math.log(real * real + imag * imag + POWER_FLOOR) / log10
        features = tf.transpose(power, (0, 3, 1, 2, 4))  # (B, F, 2, 16, bins)
        log_probs = rest([emg, features], training=False)
        return _outputs(model, emg, log_probs, _full_lengths(emg))

    return tf.function(serve, input_signature=[_emg_spec()])


def write_onnx(model, directory: Path, opset: int) -> None:
    try:
        import onnx
        import tf2onnx
    except ImportError:
        raise EmgtfError("format=onnx needs tf2onnx and onnx (pip install 'emgtf[onnx]')") from None
    function = onnx_function(model)
    # tf2onnx logs every op it cannot convert (with tracebacks) and goes on; we report them below.
    tf2onnx_logger = logging.getLogger("tf2onnx")
    level = tf2onnx_logger.level
    tf2onnx_logger.setLevel(logging.CRITICAL)
    try:
        proto, _ = tf2onnx.convert.from_function(
            function, input_signature=function.input_signature, opset=int(opset)
        )
    except Exception as e:  # tf2onnx raises ValueError, NotImplementedError, KeyError, ...
        why = f"tf2onnx {tf2onnx.__version__} at opset {opset}: {first_line(e)}"
        raise unsupported(model, "onnx", why) from None
    finally:
        tf2onnx_logger.setLevel(level)
    # What tf2onnx could not convert stays in the graph as TensorFlow ops, unknown to ONNX.
    unconverted = sorted(_foreign_ops(proto.graph, int(opset), onnx))
    if unconverted:
        why = (f"tf2onnx {tf2onnx.__version__} at opset {opset} cannot convert the TensorFlow ops "
               f"{', '.join(unconverted)}" + (" (try a higher onnx_opset)" if opset < 17 else ""))
        raise unsupported(model, "onnx", why)
    try:
        onnx.checker.check_model(proto)
    except Exception as e:
        why = f"tf2onnx {tf2onnx.__version__} wrote an invalid model ({first_line(e)})"
        raise unsupported(model, "onnx", why) from None
    onnx.save(proto, str(directory / MODEL_FILES["onnx"]))


def _foreign_ops(graph, opset: int, onnx) -> set[str]:
    """Op types of ``graph`` (and its loop bodies) that standard ONNX at ``opset`` lacks."""
    foreign = set()
    for node in graph.node:
        if node.domain in ("", "ai.onnx"):
            try:
                onnx.defs.get_schema(node.op_type, max_inclusive_version=opset, domain="")
            except onnx.defs.SchemaError:
                foreign.add(node.op_type)
        for attribute in node.attribute:
            for subgraph in [attribute.g, *attribute.graphs]:
                foreign |= _foreign_ops(subgraph, opset, onnx)
    return foreign


def unsupported(model, fmt: str, why: str) -> EmgtfError:
    return EmgtfError(f"format={fmt} cannot export model '{model.name}': {why}")
