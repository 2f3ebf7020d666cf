"""``emgtf <command> [args]``: the console script, one subcommand per entry point.

``emgtf fit trainer.epochs=3`` is ``python -m emgtf.fit trainer.epochs=3``, and so on for every
command in ``emgtf.cli.COMMANDS``.
"""

from __future__ import annotations

import importlib
import sys

from emgtf.cli import COMMANDS, run


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: emgtf <command> [args]  (emgtf <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {about}" for name, (about, _) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"emgtf: error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    command = importlib.import_module(f"emgtf.cli.{name}")
    return run(command.main, f"emgtf {name}", rest, tensorflow=COMMANDS[name][1])


if __name__ == "__main__":
    sys.exit(main())
