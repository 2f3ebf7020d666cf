"""The command-line entry points: each command's argument handling, over the library.

Every command is a module here with ``main(argv) -> int``, run through :func:`run`. They are
reached as ``python -m emgtf.<command>`` and as the console script ``emgtf <command>``.
Process-wide settings (TensorFlow's logging, the TensorFlow import itself) are made in one place,
:func:`configure_process`, which :func:`run` calls before the command's ``main``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from emgtf.errors import EmgtfError

# The commands, in the order ``emgtf --help`` lists them, and whether each one loads TensorFlow
# (directly or through Keras' TensorFlow backend).
COMMANDS = {
    "fit": ("train a model, then evaluate its best checkpoint on test", True),
    "evaluate": ("CER / IER / DER / SER of a checkpoint on whole sessions", True),
    # tune loads TensorFlow itself, after refusing a search folder in use (emgtf.cli.tune).
    "tune": ("KerasTuner search over fit configs", False),
    "personalize": ("a fit run per user from a generic checkpoint, then the per-user table", True),
    "export": ("write a SavedModel / .keras / ONNX model with export.json", True),
    "transcribe": ("decode one session file", True),
    "stream": ("decode a session as a live stream of chunks, with latencies", True),
    "replay": ("publish a session file as live LSL streams (a virtual wristband)", False),
    "inspect": ("summarise session files", False),
    "synth": ("write a synthetic dataset", False),
    "models": ("list the model families", True),
    "convert": ("one of Meta's emg2qwerty checkpoints as a .keras file", True),
    "report": ("figures and an HTML page of runs, searches and evaluations", False),
    "download": ("fetch published checkpoints, LM, BIDS sessions or the dataset, verified", False),
}


HELP_FLAGS = frozenset({"-h", "--help"})


def configure_process(*, tensorflow: bool) -> None:
    """The settings a command makes for its whole process, before any library code runs.

    - ``TF_CPP_MIN_LOG_LEVEL=2`` unless set: TensorFlow's C++ start-up chatter (oneDNN, CUDA
      probing) would hide the output users came for;
    - ``TF_ENABLE_ONEDNN_OPTS=1`` unless set: oneDNN kernels on every x86 CPU, not only AVX-512 ones;
    - for a command that uses TensorFlow, TensorFlow is imported now with stderr muted (see
      :func:`quiet_tensorflow_import`), so that a command's first line of stderr is its own.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI / BF16 / AMX;
    # elsewhere (AVX2) its Eigen kernels train the TDS model about 1.4-1.8x slower. A user's own
    # setting wins.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    if tensorflow:
        load_tensorflow()


def load_tensorflow() -> None:
    """Imports TensorFlow quietly (:func:`quiet_tensorflow_import`) when Keras runs on it: what
    :func:`configure_process` does for a command that uses TensorFlow, or the command itself later
    (after the checks that need no TensorFlow, so that they answer in a second)."""
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        quiet_tensorflow_import()


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


def run(
    main: Callable[[list[str]], int | None],
    prog: str,
    argv: list[str] | None = None,
    *,
    tensorflow: bool | None = None,
) -> int:
    """Runs ``main(argv)`` and turns user-facing errors into one line on stderr and exit status 2.

    Any :class:`EmgtfError` (bad input, missing file, bad config) becomes ``prog: error: message``.
    Ctrl-C exits 130 quietly. Programming errors keep their traceback, since they are bugs.
    ``tensorflow``: whether the command loads TensorFlow (default: as :data:`COMMANDS` says of
    ``prog``'s last word, ``emgtf.fit`` -> ``fit``).
    """
    argv = sys.argv[1:] if argv is None else argv
    if tensorflow is None:
        tensorflow = COMMANDS.get(prog.rsplit(".", 1)[-1], ("", False))[1]
    # Help is text: it answers in a second, without TensorFlow's start-up.
    configure_process(tensorflow=tensorflow and not HELP_FLAGS.intersection(argv))
    try:
        code = main(argv)
    except EmgtfError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        if e.hard_exit:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)
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
