"""How an emgtf command starts: process-wide settings, and a quiet TensorFlow import.

TensorFlow 2.18+ writes absl log lines from C++ when it is imported and when it first probes for
devices (``oneDNN custom operations are on``, ``cudart_stub.cc ... Could not find cuda drivers``,
``failed call to cuInit``), before any log level applies: ``TF_CPP_MIN_LOG_LEVEL`` does not stop
them. They would stand before every command's output and every one-line error, so a command
imports TensorFlow with stderr closed, unless the user asks to see them: ``--verbose`` (or
``verbose=true``) on the command line, or ``TF_CPP_MIN_LOG_LEVEL`` set to 0 or 1 in the
environment (TensorFlow's levels that show info or warning lines; 2 and 3 ask for less, and
muting is what gives them that).

Past start-up, a quiet command runs at ``TF_CPP_MIN_LOG_LEVEL=3`` (unless the user set a level):
TensorFlow's C++ code still writes ERROR lines while a run goes well, e.g. ``node_def_util.cc ...
NodeDef mentions attribute use_unbounded_threadpool`` (a tf.data attribute a graph pass does not
know) and ``util.cc ... oneDNN supports DT_BOOL only on platforms with AVX-512`` on every fit.
Level 3 hides INFO, WARNING and ERROR lines (never FATAL ones); nothing is lost with them, because
a real failure reaches Python as an exception (an ``OpError`` that emgtf turns into one line
naming the file, or a traceback), and ``--verbose`` or a user's level shows them all again.

This module is at the bottom of the package (it imports nothing of emgtf), because
``python -m emgtf.models`` imports the ``emgtf.models`` package, and so Keras, before the
command's ``__main__`` runs: ``configure_for_module_run``, called by ``emgtf/__init__.py``,
makes the settings at that earliest point.
"""

from __future__ import annotations

import importlib.abc
import os
import sys

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LOG_LEVEL = "3"  # FATAL only: real errors surface as Python exceptions (module docstring)
VERBOSE_FLAG = "--verbose"
VERBOSE_HELP = "show TensorFlow's log lines (also: TF_CPP_MIN_LOG_LEVEL=0 or 1 in the environment)"

# Whether the user's environment asks for TensorFlow's info or warning lines: read once, before
# configure_process sets its default of 3.
_USER_LOG_LEVEL = os.environ.get(LOG_LEVEL_VARIABLE, "").strip() in ("0", "1")
_TRUE = frozenset({"true", "yes", "1", "on"})


def asks_verbose(argv: list[str]) -> bool:
    """Whether a command line asks for TensorFlow's log lines: ``--verbose`` or ``verbose=true``."""
    for token in argv:
        if token == "--":
            return False
        if token == VERBOSE_FLAG or token.startswith("--verbose="):
            return token == VERBOSE_FLAG or token.split("=", 1)[1].lower() in _TRUE
        if token.startswith("verbose="):
            return token.split("=", 1)[1].lower() in _TRUE
    return False


def configure_process(*, tensorflow: bool, verbose: bool = False) -> None:
    """The settings a command makes for its whole process, before any library code runs.

    - ``TF_CPP_MIN_LOG_LEVEL=3`` unless set (or ``verbose``): TensorFlow's C++ chatter, at start-up
      and the ERROR lines it writes during a healthy run (see the module docstring), would hide
      the output users came for;
    - ``TF_ENABLE_ONEDNN_OPTS=1`` unless set: oneDNN kernels on every x86 CPU, not only AVX-512 ones;
    - unless ``verbose`` or the user set ``TF_CPP_MIN_LOG_LEVEL`` to 0 or 1: TensorFlow, whenever it is first
      imported in this process (Keras imports it), is imported with stderr muted
      (``quiet_tensorflow_import``); for a command that uses TensorFlow (``tensorflow``) that
      happens now, so that a command's first line of stderr is its own.
    """
    quiet = not (verbose or _USER_LOG_LEVEL)
    if quiet:
        os.environ.setdefault(LOG_LEVEL_VARIABLE, QUIET_LOG_LEVEL)
    # TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI / BF16 / AMX;
    # elsewhere (AVX2) its Eigen kernels train the TDS model about 1.4-1.8x slower. A user's own
    # setting wins.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    if not quiet:
        _QuietTensorFlowFinder.uninstall()
        return
    _QuietTensorFlowFinder.install()
    if tensorflow:
        load_tensorflow()


def configure_for_module_run() -> None:
    """``configure_process`` when this process is ``python -m emgtf.<command>``, called while
    Python is still importing ``emgtf`` to find the command (``sys.argv[0]`` is then ``-m``):
    before a command package's ``__init__`` imports Keras. Nothing otherwise (an ``import emgtf``
    of a program or of the tests has no side effect)."""
    original = getattr(sys, "orig_argv", [])
    if sys.argv[:1] != ["-m"] or "-m" not in original:
        return
    module = original[original.index("-m") + 1] if original.index("-m") + 1 < len(original) else ""
    if module == "emgtf" or module.startswith("emgtf."):
        configure_process(tensorflow=False, verbose=asks_verbose(sys.argv[1:]))


def load_tensorflow() -> None:
    """Imports TensorFlow quietly (``quiet_tensorflow_import``) when Keras runs on it: what
    ``configure_process`` does for a command that uses TensorFlow, or the command itself later
    (after the checks that need no TensorFlow, so that they answer in a second)."""
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        quiet_tensorflow_import()


def quiet_tensorflow_import() -> None:
    """Imports TensorFlow with the process's stderr closed, and lets it probe for devices there.

    A failed import restores stderr first, so its error is still seen.
    """
    if "tensorflow" in sys.modules:
        return
    _QuietTensorFlowFinder.uninstall()
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow

        # Device discovery logs a CUDA probe failure on machines without a GPU; do it here.
        tensorflow.config.list_physical_devices()
    except ImportError:
        pass  # another backend (JAX, PyTorch) runs without TensorFlow; Keras reports what is missing
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Makes the first import of ``tensorflow`` or ``keras`` anywhere in the process (a library
    module's own ``import keras``) go through ``quiet_tensorflow_import`` first. It finds
    nothing itself: once TensorFlow is in, the import goes on as usual."""

    _installed: _QuietTensorFlowFinder | None = None

    @classmethod
    def install(cls) -> None:
        if cls._installed is None and "tensorflow" not in sys.modules:
            cls._installed = cls()
            sys.meta_path.insert(0, cls._installed)

    @classmethod
    def uninstall(cls) -> None:
        if cls._installed is not None:
            if cls._installed in sys.meta_path:
                sys.meta_path.remove(cls._installed)
            cls._installed = None

    def find_spec(self, fullname, path=None, target=None):
        if fullname in ("tensorflow", "keras"):
            if fullname == "tensorflow" or os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
                quiet_tensorflow_import()
        return None
