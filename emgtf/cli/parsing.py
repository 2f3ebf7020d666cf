"""Argument parsing shared by the entry points: the one command convention, ``key=value``.

Every emgtf command takes its arguments as ``key=value``. The config-driven commands (fit,
evaluate, tune, export, personalize) pass them to Hydra as overrides (``CommandParser``).
The others declare ordinary argparse arguments, and ``ArgumentParser`` accepts each of them
in both forms:

- an option ``--chunk-ms 40`` is also ``chunk_ms=40`` (or ``chunk-ms=40``); a switch
  ``--realtime`` is also ``realtime=true`` (``false`` leaves it off);
- a positional argument is also ``<its name>=value``: ``session=FILE``, ``src=A.ckpt``; one that
  takes several values takes the key once per value or a comma-free repetition
  (``path=A path=B``).

So the flags of earlier versions keep working, and a key that the command does not know is a
one-line error that lists the keys it does know.
"""

from __future__ import annotations

import argparse
import re

from emgtf.errors import EmgtfError
from emgtf.startup import VERBOSE_FLAG, VERBOSE_HELP

# A key=value token: a bare identifier (dashes allowed) before the first '='. Dotted keys
# (trainer.epochs=3) are Hydra overrides and only config-driven commands take them.
_KEY_VALUE = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)=(.*)$", re.DOTALL)
_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})

KEY_VALUE_HELP = "Every option is also accepted as key=value (--chunk-ms 40 is chunk_ms=40), and every " \
    "positional argument as <name>=value."


class ArgumentParser(argparse.ArgumentParser):
    """argparse for the entry points: ``key=value`` for every argument (see the module), and a
    usage mistake is a one-line EmgtfError (exit 2), like a config mistake, instead of argparse's
    usage dump."""

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        epilog = kwargs.get("epilog")
        kwargs["epilog"] = f"{epilog}\n\n{KEY_VALUE_HELP}" if epilog else KEY_VALUE_HELP
        super().__init__(**kwargs)
        # Read by emgtf.cli.run before the command parses (emgtf.startup); declared here so that
        # every command accepts it and lists it in --help.
        self.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)

    def error(self, message):
        raise EmgtfError(f"{message} (see --help)")

    # --- key=value -------------------------------------------------------------------------

    def _takes_free_overrides(self) -> bool:
        """Whether a positional collects arbitrary key=value text (a Hydra command's overrides):
        then an unknown key is left to it."""
        return any(a.dest == "overrides" for a in self._positionals._group_actions)

    def _keys(self) -> dict[str, argparse.Action]:
        keys = {}
        for action in self._actions:
            if action.dest in (argparse.SUPPRESS, "help", "overrides"):
                continue
            keys[action.dest] = action
            for option in action.option_strings:
                if option.startswith("--"):
                    keys[option[2:].replace("-", "_")] = action
        return keys

    def keys(self) -> list[str]:
        """The keys this command accepts, in the order they were declared (the process-wide
        ``verbose`` last)."""
        keys = list(dict.fromkeys(a.dest for a in self._keys().values()))
        return sorted(keys, key=lambda key: key == "verbose")

    def rewrite(self, argv: list[str]) -> list[str]:
        """``argv`` with every ``key=value`` of a declared argument turned into argparse's form:
        options as ``--option=value``, positionals put in their declared order."""
        keys = self._keys()
        options: list[str] = []
        bare: list[str] = []
        by_key: dict[str, list[str]] = {}
        i = 0
        while i < len(argv):
            token = argv[i]
            i += 1
            if token == "--":
                bare.extend(argv[i:])
                break
            if token.startswith("-") and len(token) > 1:
                taken = self._option_value_count(token, argv[i:])
                options.extend(argv[i - 1:i + taken])
                i += taken
                continue
            match = _KEY_VALUE.match(token)
            if match is None:
                bare.append(token)
                continue
            key, value = match.group(1).replace("-", "_"), match.group(2)
            action = keys.get(key)
            if action is None:
                if self._takes_free_overrides():
                    bare.append(token)
                    continue
                raise EmgtfError(f"unknown key '{match.group(1)}' (this command takes: "
                                 f"{', '.join(self.keys())}; see --help)")
            if action.option_strings:
                options.extend(self._as_option(action, key, value))
            else:
                by_key.setdefault(action.dest, []).append(value)
        positionals: list[str] = []
        for action in self._positionals._group_actions:
            if action.dest in by_key:
                values = by_key.pop(action.dest)
                if action.nargs in (None, "?") and len(values) > 1:
                    raise EmgtfError(f"{action.dest}= given {len(values)} times; it takes one value")
                positionals.extend(values)
            elif action.nargs in ("*", "+", argparse.REMAINDER):
                positionals.extend(bare)
                bare = []
            elif action.nargs in (None, "?") and bare:
                positionals.append(bare.pop(0))
        return options + positionals + bare

    def _option_value_count(self, token: str, rest: list[str]) -> int:
        """How many of the tokens ``rest`` that follow option ``token`` are its values (none for
        a switch or an ``--option=value``)."""
        action = self._option_string_actions.get(token)
        if action is None or action.nargs == 0:
            return 0
        if action.nargs in (None, "?"):
            return min(1, len(rest)) if action.nargs is None or (rest and not rest[0].startswith("-")) else 0
        if isinstance(action.nargs, int):
            return min(action.nargs, len(rest))
        count = 0  # '*' / '+': up to the next option
        while count < len(rest) and not rest[count].startswith("-"):
            count += 1
        return count

    @staticmethod
    def _as_option(action: argparse.Action, key: str, value: str) -> list[str]:
        option = next(o for o in action.option_strings if o.startswith("--"))
        if action.nargs == 0:  # a switch (store_true / store_false / store_const)
            word = value.strip().lower()
            if word in _TRUE:
                return [option]
            if word in _FALSE:
                return []
            raise EmgtfError(f"{key}= takes true or false, got '{value}'")
        return [f"{option}={value}"]

    def parse_known_args(self, args=None, namespace=None):
        import sys

        argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(self.rewrite(argv), namespace)


class CommandParser(ArgumentParser):
    """The parser of a config-driven entry point (fit, evaluate, export, tune): ``key=value``
    overrides and ``--dry-run``."""

    def __init__(self, *, overrides_help="config overrides", dry_run_help="print the resolved config and exit",
                 **kwargs):
        super().__init__(**kwargs)
        self.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)
        self.add_argument("--dry-run", action="store_true", help=dry_run_help)
