"""Process-wide settings a run needs before its model is built: devices and their engine
(``emgtf.training.distribute``), seed, determinism, precision."""

from __future__ import annotations

from emgtf.errors import EmgtfError
from emgtf.training.distribute import setup


def _precision_policy(value) -> str:
    if value is False or value is None:
        return "float32"
    if value is True:
        return "mixed_float16"
    if value in ("mixed_float16", "mixed_bfloat16", "float32"):
        return value
    raise EmgtfError(
        f"trainer.mixed_precision must be false, true, mixed_float16 or mixed_bfloat16, got {value!r}"
    )


def jit_compile_value(value, key: str = "trainer.jit_compile"):
    """``value`` (true, false or auto) checked; a one-line EmgtfError naming ``key`` otherwise."""
    if not (isinstance(value, bool) or value == "auto"):
        raise EmgtfError(f"{key} must be true, false or auto, got {value!r}")
    return value


def jit_compile(trainer, backend: str | None = None, key: str = "trainer.jit_compile") -> bool:
    """Whether the run's train and predict steps are XLA-compiled: ``trainer.jit_compile`` true or
    false, or ``auto`` (the default): on under JAX, off under TensorFlow (and torch).

    Keras's JAX trainer without ``jit_compile`` dispatches every op of the step eagerly from Python,
    several times slower than jax.jit, its only compiled path; TensorFlow without it still runs
    tf.function graphs, and its op determinism excludes XLA.
    """
    value = jit_compile_value(trainer.get("jit_compile", "auto"), key)
    if value != "auto":
        return value
    if backend is None:
        import keras

        backend = keras.backend.backend()
    return backend == "jax"


def setup_runtime(cfg):
    """Applies the run's process-wide settings; returns its
    ``Distribution``."""
    # First: logical devices and multi-worker collectives can only be set up before TensorFlow
    # starts, and the calls below start it.
    distribution = setup(cfg)
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(cfg.seed))
    if (jit_compile(cfg.trainer) and cfg.trainer.get("deterministic", True)
            and keras.backend.backend() == "tensorflow"):
        # Keras silently drops XLA when TensorFlow's op determinism is on; say so instead.
        raise EmgtfError(
            "trainer.jit_compile: XLA does not run with trainer.deterministic=true under TensorFlow; "
            "set trainer.deterministic=false"
        )
    if cfg.trainer.get("deterministic", True):
        # Same seed, same machine -> the same history (CPU); costs speed on a GPU.
        tf.config.experimental.enable_op_determinism()
    else:
        # The switch is process-wide: a run (or trial) without it must not inherit an earlier one's.
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()
    keras.config.set_dtype_policy(_precision_policy(cfg.trainer.get("mixed_precision", False)))
    return distribution
