"""Messages for people: the ``log`` callable that library code takes instead of printing.

A library function that has something to tell (progress, a warning, a result table) calls
``log(message)``, ``log(message, warning=True)`` or ``log(text, prefix=False)``; the command that
called it decides where that goes and how it is prefixed (``console_log``), and a caller such
as the tuner or a test can pass its own.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol


class Log(Protocol):
    def __call__(self, message: str, *, warning: bool = False, prefix: bool = True) -> None: ...


def console_log(prog: str) -> Log:
    """The log of command ``prog``: ``prog: message`` on stdout, on stderr for a warning; text as it
    is with ``prefix=False``. Leading blank lines stay in front of the prefix."""

    def log(message: str, *, warning: bool = False, prefix: bool = True) -> None:
        if prefix:
            body = message.lstrip("\n")
            message = f"{message[: len(message) - len(body)]}{prog}: {body}"
        print(message, file=sys.stderr if warning else sys.stdout, flush=True)

    return log


def discard(message: str, *, warning: bool = False, prefix: bool = True) -> None:
    """The log of library code called without one: it says nothing (only commands print)."""


def unprefixed(log: Log) -> Log:
    """``log`` with its messages as they are (``prefix=False``): for what a library passes on to
    another, whose lines are not the command's own."""

    def passed_on(message: str, *, warning: bool = False, prefix: bool = True) -> None:
        log(message, warning=warning, prefix=False)

    return passed_on


def plain_log(write: Callable[[str], None] | None) -> Log:
    """A ``Log`` over a one-argument callable (``print``, a list's ``append``; None: discard):
    every message goes to it as it is, unprefixed, warnings included. For a library that takes
    such a callable (the tuner) and hands its messages to one that takes a Log."""
    if write is None:
        return discard

    def log(message: str, *, warning: bool = False, prefix: bool = True) -> None:
        write(message)

    return log
