"""The step adapters a ``StreamingDecoder`` runs: each push's new frames only.

- ``CompiledStep``: a Keras model's incremental step (``emgtf.models.streaming.incremental_step``),
  compiled per hop count;
- ``TFLiteStep``: a TFLite export's step (``emgtf.export.stream_step``), on fixed chunks;
- ``compiled_step``: a model's CompiledStep, or None where it has none;
- ``limit_threads``: TensorFlow's thread pools, for a stream's small steps.

Both steps answer ``step(state, samples, final=False)`` -> ``(next_state, log_probs)`` on
``max_units`` units of ``unit_samples`` samples at most, and carry their ``layout``.
"""

from __future__ import annotations

import numpy as np

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.errors import EmgtfError

__all__ = ["MAX_STEP_HOPS", "CompiledStep", "TFLiteStep", "compiled_step", "limit_threads"]

# Hops per incremental step call at most (0.5 s): a push of an hour at once is stepped in
# pieces, so its memory stays flat and at most this many step shapes are ever traced.
MAX_STEP_HOPS = 64


class CompiledStep:
    """A model's incremental step (``emgtf.models.streaming.incremental_step``), compiled for
    each number of hops a stream uses (TensorFlow: a ``tf.function`` traced once per hop count,
    at most ``MAX_STEP_HOPS`` of them, in practice one or two for a fixed push size; a static
    frame count lets the layers pick their few-frame form; other backends run it eagerly).
    ``step(state, samples)`` -> ``(next_state, log_probs)``: the state stays a backend tensor,
    log_probs come as numpy (hops, 99). ``samples`` is any whole number of hops, at most
    ``max_units`` of them (``unit_samples`` each)."""

    max_units = MAX_STEP_HOPS

    def __init__(self, model):
        import keras

        from emgtf.models.streaming import incremental_step, state_layout

        self.layout = layout = state_layout(model)
        self.unit_samples = layout.hop_length

        def step(state, samples, final=False):
            return incremental_step(model, layout, state, samples, final=final)

        self._step = step
        self._traced = None
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # Not XLA: on this CPU (AMD EPYC, 2 cores) it was slower than the graph (12.3 against
            # 8.6 ms per 5-hop step of Meta's model, one thread).
            def stepper(final):
                return tf.function(lambda state, samples: step(state, samples, final))

            functions = {final: stepper(final) for final in (False, True)}
            # (hop count, final) -> concrete function (called without tf.function's dispatch)
            self._traced = {}

            def trace(hops, final):
                return functions[final].get_concrete_function(
                    tf.TensorSpec([layout.state_size], tf.float32),
                    tf.TensorSpec([hops * layout.hop_length, NUM_BANDS, NUM_CHANNELS], tf.float32),
                )

            self._trace = trace

    def initial_state(self):
        from keras import ops

        return ops.convert_to_tensor(self.layout.initial_state())

    def __call__(self, state, samples: np.ndarray, final: bool = False):
        """``final``: the stream ends with these samples (a rolling norm releases what a stream
        shorter than its warm-up holds)."""
        from keras import ops

        if self._traced is None:
            next_state, log_probs = self._step(state, ops.convert_to_tensor(samples), final)
        else:
            key = (len(samples) // self.layout.hop_length, final)
            step = self._traced.get(key) or self._traced.setdefault(key, self._trace(*key))
            next_state, log_probs = step(state, ops.convert_to_tensor(samples))
        return next_state, ops.convert_to_numpy(log_probs)

    def describe(self) -> str:
        why = f" ({self.why_not_tflite})" if getattr(self, "why_not_tflite", None) else ""
        return f"Keras incremental step{why}, each frame computed once"


class TFLiteStep:
    """The streaming step of a TFLite export (``emgtf.export.stream_step``: the same
    computation as ``CompiledStep``, float32 or int8), called like it but on exactly one
    chunk of ``layout.chunk_samples`` samples (a TFLite model's shapes are fixed):
    ``step(state, samples)`` -> ``(next_state, log_probs)``, numpy both, log_probs (frames, 99).
    ``threads``: the interpreter's (None: TFLite's default)."""

    max_units = 1

    def __init__(self, path, layout, threads: int | None = None):
        from emgtf.inference.runners import tflite_step

        self.path = path
        self.layout = layout
        self.unit_samples = layout.chunk_samples
        self._step = tflite_step(path, threads)

    def initial_state(self) -> np.ndarray:
        return self.layout.initial_state()

    def __call__(self, state, samples: np.ndarray, final: bool = False):
        return self._step(state, samples)

    def describe(self) -> str:
        return (f"TFLite step {self.path.name}, chunks of {self.unit_samples} samples, each frame "
                "computed once")


def limit_threads(threads: int | None) -> None:
    """Runs TensorFlow's ops on ``threads`` threads (None: its default, every core). A stream's
    small steps gain little from more threads, whose idle spinning costs CPU time (Meta's TDS,
    AMD EPYC, 2 cores: 8.6 ms of CPU per 40 ms step on one thread, 13.5 ms on the default pool).
    Must come before TensorFlow runs anything; raises EmgtfError after."""
    if threads is None:
        return
    if threads < 1:
        raise EmgtfError(f"threads must be >= 1, got {threads}")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        raise EmgtfError("TensorFlow's threads can only be set before it runs anything") from None


def compiled_step(model):
    """The model's ``CompiledStep``, or None for a model that has none (windowed then)."""
    from emgtf.models.streaming import state_layout

    try:
        state_layout(model)
    except EmgtfError:
        return None
    return CompiledStep(model)
