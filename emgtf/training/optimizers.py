"""The optimizer of a config (``optimizer`` group): Adam or AdamW with the config's settings."""

from __future__ import annotations

import functools

from emgtf.config import required
from emgtf.errors import EmgtfError


def _several_tf_replicas() -> bool:
    import keras

    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1


@functools.cache
def _clipping_the_sum(base):
    """``base`` (a Keras optimizer class) that clips the gradient summed over the replicas.

    Under tf.distribute Keras 3 clips each replica's share of the gradient and sums the clipped
    shares afterwards, so ``clipnorm`` would bound every device's share, not the step's gradient,
    and 2 devices would train differently from 1 on the same global batch. This sums the shares
    first (the all-reduce Keras would do next) and clips the sum, as on one device.
    """
    import keras
    import tensorflow as tf

    class SumThenClip(base):
        def _clip_gradients(self, grads):
            context = tf.distribute.get_replica_context()
            present = [g for g in grads if g is not None]
            if context is not None and present:
                summed = iter(context.all_reduce(tf.distribute.ReduceOp.SUM, present))
                grads = [None if g is None else next(summed) for g in grads]
            return super()._clip_gradients(grads)

        def _all_reduce_sum_gradients(self, grads_and_vars):
            return grads_and_vars  # summed before clipping, above

    SumThenClip.__name__ = SumThenClip.__qualname__ = f"SumThenClip{base.__name__}"
    return keras.saving.register_keras_serializable(package="emgtf")(SumThenClip)


def make_optimizer(opt_cfg, learning_rate):
    """The Keras optimizer that ``opt_cfg`` (the ``optimizer`` group, every key of its YAML) names,
    with ``learning_rate`` (a float or a schedule). A missing key is a one-line error naming it."""
    import keras

    def get(key):
        return required(opt_cfg, key, "optimizer")

    name = get("name")
    kwargs = dict(
        learning_rate=learning_rate,
        beta_1=float(get("beta_1")),
        beta_2=float(get("beta_2")),
        epsilon=float(get("epsilon")),
    )
    if get("clipnorm") is not None:
        kwargs["clipnorm"] = float(get("clipnorm"))
    weight_decay = get("weight_decay")
    if name == "adam":
        if weight_decay is not None:
            kwargs["weight_decay"] = float(weight_decay)
        cls = keras.optimizers.Adam
    elif name == "adamw":
        kwargs["weight_decay"] = float(weight_decay or 0.0)  # null: AdamW without decay
        cls = keras.optimizers.AdamW
    else:
        raise EmgtfError(f"optimizer.name: unknown optimizer '{name}' (choose adam or adamw)")
    if "clipnorm" in kwargs and _several_tf_replicas():
        cls = _clipping_the_sum(cls)
    return cls(**kwargs)
