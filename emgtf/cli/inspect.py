"""``python -m emgtf.inspect SESSION... [json=true]``: one summary per emg2qwerty session file.

Prints a table (or, with ``--json``, a JSON list) with, per session: session_name, user,
condition, duration_mins, num_samples, num_keystrokes, num_prompts and text (the whole session's
ground truth). Every file is fully validated (format, keystroke JSON, monotonic timestamps); the
first bad file stops the run with a one-line error naming it.
"""

from __future__ import annotations

import json

from emgtf.cli.parsing import ArgumentParser
from emgtf.data.session import SUMMARY_KEYS, summarize


def _table(rows: list[dict], text_width: int = 60) -> str:
    def short(text: str) -> str:
        text = text.replace("\n", " ")
        return text if len(text) <= text_width else text[: text_width - 1] + "…"

    cells = [[str(r[k]) if k != "text" else short(r[k]) for k in SUMMARY_KEYS] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(SUMMARY_KEYS)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(SUMMARY_KEYS, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="python -m emgtf.inspect",
                            description="One summary per emg2qwerty session file (a table, or JSON).")
    parser.add_argument("session", nargs="+", metavar="SESSION",
                        help="emg2qwerty session files (.hdf5); as key=value, session= once per file")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    args = parser.parse_args(argv)
    rows = [summarize(p) for p in args.session]
    print(json.dumps(rows, ensure_ascii=False, indent=2) if args.json else _table(rows))
    return 0

