"""Process-wide run settings (emgtf.training.runtime): what trainer.jit_compile stands for."""

import pytest
from omegaconf import OmegaConf

from emgtf.training.runtime import jit_compile


@pytest.mark.parametrize("value, backend, compiled", [
    ("auto", "jax", True),  # Keras's JAX trainer runs the step op by op without it
    ("auto", "tensorflow", False),  # tf.function graphs; XLA would exclude op determinism
    ("auto", "torch", False),
    (False, "jax", False),
    (True, "tensorflow", True),
])
def test_jit_compile_auto_is_xla_under_jax_only_and_an_explicit_value_wins(value, backend, compiled):
    assert jit_compile(OmegaConf.create({"jit_compile": value}), backend) is compiled


def test_jit_compile_defaults_to_auto_for_a_config_without_the_key():
    assert jit_compile(OmegaConf.create({}), "jax") is True
