"""Ctrl-C while training or evaluating stops at the next batch boundary.

Python raises ``KeyboardInterrupt`` between any two bytecodes. Inside TensorFlow's graph tracing
that leaves its graph stack half unwound, so the interrupt surfaces as an ``AssertionError``
("Nesting violated", then "Do not use tf.reset_default_graph()") that KerasTuner records as a
failed trial and the search goes on; inside a garbage-collector callback (JAX registers one)
Python drops it altogether. Either way Ctrl-C did not stop the run.

So within ``deferred``, the first Ctrl-C only records itself and says so; ``check``
(called at every batch boundary: ``StopOnInterrupt``, the evaluation loops, between trials)
then raises ``KeyboardInterrupt`` where nothing is half done. A second Ctrl-C raises at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

_requested = threading.Event()


def requested() -> bool:
    """Whether Ctrl-C was pressed inside the current ``deferred`` block."""
    return _requested.is_set()


def check() -> None:
    """Raises ``KeyboardInterrupt`` if Ctrl-C was pressed; call it where stopping is safe."""
    if _requested.is_set():
        raise KeyboardInterrupt


def _on_sigint(signum, frame):
    if _requested.is_set():
        signal.default_int_handler(signum, frame)  # the second Ctrl-C: now
    _requested.set()
    print("\nemgtf: stopping after this batch (Ctrl-C again to stop now)", file=sys.stderr, flush=True)


@contextlib.contextmanager
def deferred():
    """Defers Ctrl-C to the next ``check`` for the block (nested blocks share the outer one).

    An exception that escapes the block after Ctrl-C (TensorFlow's ``AssertionError`` above)
    becomes ``KeyboardInterrupt``, so callers see the interrupt, never a failure it caused.
    Where the handler cannot be installed (not the main thread, or SIGINT already handled by
    someone else), Ctrl-C behaves as Python's default.
    """
    install = (threading.current_thread() is threading.main_thread()
               and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if install:
        _requested.clear()
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
        if install:
            check()  # pressed during the last batch: the caller still stops
    except Exception as e:
        if _requested.is_set():
            raise KeyboardInterrupt from e
        raise
    finally:
        if install:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            _requested.clear()
