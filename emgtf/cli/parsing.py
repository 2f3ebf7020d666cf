"""Argument parsing shared by the entry points: one-line usage errors, ``key=value`` overrides."""

from __future__ import annotations

import argparse

from emgtf.errors import EmgtfError


class ArgumentParser(argparse.ArgumentParser):
    """argparse for the entry points: a usage mistake is a one-line EmgtfError (exit 2), like a
    config mistake, instead of argparse's usage dump."""

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(**kwargs)

    def error(self, message):
        raise EmgtfError(f"{message} (see --help)")


class CommandParser(ArgumentParser):
    """The parser of a config-driven entry point (fit, evaluate, export, tune): ``key=value``
    overrides and ``--dry-run``."""

    def __init__(self, *, overrides_help="config overrides", dry_run_help="print the resolved config and exit",
                 **kwargs):
        super().__init__(**kwargs)
        self.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)
        self.add_argument("--dry-run", action="store_true", help=dry_run_help)
