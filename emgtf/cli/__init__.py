"""The command-line entry points: each command's argument handling, over the library.

Every command is a module here with ``main(argv) -> int``, run through ``run``. They are
reached as ``python -m emgtf.<command>`` and as the console script ``emgtf <command>``.
Process-wide settings (TensorFlow's logging, the TensorFlow import itself) are made in one place,
``emgtf.startup.configure_process``, which ``run`` calls before the command's ``main``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from emgtf.errors import EmgtfError
from emgtf.startup import asks_verbose, configure_process, load_tensorflow, quiet_tensorflow_import

__all__ = ["COMMANDS", "configure_process", "load_tensorflow", "quiet_tensorflow_import", "run"]

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


def run(
    main: Callable[[list[str]], int | None],
    prog: str,
    argv: list[str] | None = None,
    *,
    tensorflow: bool | None = None,
) -> int:
    """Runs ``main(argv)`` and turns user-facing errors into one line on stderr and exit status 2.

    Any ``EmgtfError`` (bad input, missing file, bad config) becomes ``prog: error: message``.
    Ctrl-C exits 130 quietly. Programming errors keep their traceback, since they are bugs.
    ``tensorflow``: whether the command loads TensorFlow (default: as ``COMMANDS`` says of
    ``prog``'s last word, ``emgtf.fit`` -> ``fit``).
    """
    argv = sys.argv[1:] if argv is None else argv
    if tensorflow is None:
        tensorflow = COMMANDS.get(prog.rsplit(".", 1)[-1], ("", False))[1]
    # Help is text: it answers in a second, without TensorFlow's start-up.
    configure_process(tensorflow=tensorflow and not HELP_FLAGS.intersection(argv), verbose=asks_verbose(argv))
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
