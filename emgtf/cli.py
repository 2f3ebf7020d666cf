"""Shared plumbing for the ``python -m emgtf.*`` entry points."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from emgtf.errors import EmgtfError

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) hides the output users came for.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
