"""Shared plumbing for the ``python -m emgtf.*`` entry points."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from emgtf.errors import EmgtfError

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) hides the output users came for.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Entry points that load TensorFlow (directly or through Keras' TensorFlow backend).
TENSORFLOW_ENTRY_POINTS = frozenset(
    f"emgtf.{name}"
    for name in ("fit", "evaluate", "tune", "export", "transcribe", "models", "convert")
)


def entry_point() -> str | None:
    """The module run with ``python -m``, or None (e.g. under pytest or in a notebook)."""
    argv = getattr(sys, "orig_argv", [])
    if "-m" in argv and argv.index("-m") + 1 < len(argv):
        return argv[argv.index("-m") + 1]
    return None


def quiet_tensorflow_import() -> None:
    """Imports TensorFlow with the process's stderr closed.

    TensorFlow 2.18+ writes absl log lines (oneDNN, CUDA probing) from C++ before any log level
    applies, so no environment variable silences them; they would stand before every one-line
    error of our CLIs. A failed import restores stderr first, so its error is still seen.
    """
    if "tensorflow" in sys.modules:
        return
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


def run(main: Callable[[list[str]], int | None], prog: str, argv: list[str] | None = None) -> int:
    """Runs ``main(argv)`` and turns user-facing errors into one line on stderr and exit status 2.

    Any :class:`EmgtfError` (bad input, missing file, bad config) becomes ``prog: error: message``.
    Ctrl-C exits 130 quietly. Programming errors keep their traceback, since they are bugs.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        code = main(argv)
    except EmgtfError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, and keep Python's exit-time flush of
        # stdout from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return int(code or 0)
