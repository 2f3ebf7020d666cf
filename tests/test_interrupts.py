"""Ctrl-C (a real SIGINT to this process) inside :func:`emgtf.interrupts.deferred`."""

from __future__ import annotations

import os
import signal

import pytest

from emgtf import interrupts
from tests.helpers import python_sigint


@pytest.fixture(autouse=True)
def terminal_sigint():
    with python_sigint():
        yield


def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)


def test_first_ctrl_c_waits_for_check_and_the_handler_is_restored(capfd):
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            ctrl_c()
            reached.append("after the signal")
            assert interrupts.requested()
            interrupts.check()
            reached.append("after check")
    assert reached == ["after the signal"]
    assert "Ctrl-C again to stop now" in capfd.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    assert not interrupts.requested()
    interrupts.check()  # nothing pending once the block is left


def test_second_ctrl_c_stops_at_once():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            ctrl_c()
            reached.append(1)
            ctrl_c()
            reached.append(2)
    assert reached == [1]


def test_ctrl_c_in_the_last_batch_still_stops_the_caller():
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            ctrl_c()  # no check() follows: the block's end raises


def test_a_failure_after_ctrl_c_is_reported_as_the_interrupt():
    # As TensorFlow's "Nesting violated" AssertionError after a second Ctrl-C while tracing.
    with pytest.raises(KeyboardInterrupt) as caught:
        with interrupts.deferred():
            ctrl_c()
            raise AssertionError("Nesting violated")
    assert isinstance(caught.value.__cause__, AssertionError)
    with pytest.raises(AssertionError):  # without Ctrl-C a failure stays itself
        with interrupts.deferred():
            raise AssertionError("a real bug")


def test_nested_blocks_share_the_outer_handler():
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            with interrupts.deferred():
                ctrl_c()
            # The inner block ends without raising: the outer one decides when to stop.
            assert interrupts.requested()
            interrupts.check()


def test_ctrl_c_while_tensorflow_traces_waits_for_the_trace_to_finish():
    """What this module exists for: a KeyboardInterrupt raised inside tf.function tracing can
    leave TensorFlow's graph stack half unwound ("Nesting violated", then every later
    ``keras.backend.clear_session()`` fails), so the interrupt must wait until tracing is done."""
    import keras
    import tensorflow as tf

    @tf.function
    def traced(x):
        y = x * 2.0
        ctrl_c()  # while the graph is being built
        return y + 1.0

    results = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            results.append(float(traced(tf.constant(1.0))))
            interrupts.check()
    assert results == [3.0]  # the trace finished and the function ran
    keras.backend.clear_session()
    assert float(tf.function(lambda x: x + 1.0)(tf.constant(1.0))) == 2.0
