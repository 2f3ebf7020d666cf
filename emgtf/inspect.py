"""``python -m emgtf.inspect PATH... [--json]``: one summary per emg2qwerty session file.

Prints a table (or, with ``--json``, a JSON list) with, per session: session_name, user,
condition, duration_mins, num_samples, num_keystrokes, num_prompts and text (the whole session's
ground truth). Every file is fully validated (format, keystroke JSON, monotonic timestamps); the
first bad file stops the run with a one-line error naming it.
"""

from __future__ import annotations

import argparse
import json
import sys

from emgtf.cli import run
from emgtf.data.session import EMGSession

KEYS = (
    "session_name", "user", "condition", "duration_mins", "num_samples", "num_keystrokes",
    "num_prompts", "text",
)


def summarize(path) -> dict:
    """The summary of one session file, with exactly the keys of ``KEYS``."""
    with EMGSession(path) as s:
        s.timestamps  # validates monotonic time, so a corrupt file is reported here
        return {
            "session_name": s.session_name,
            "user": s.user,
            "condition": s.condition,
            "duration_mins": round(s.duration_mins, 3),
            "num_samples": len(s),
            "num_keystrokes": len(s.keystrokes),
            "num_prompts": len(s.prompts),
            "text": s.ground_truth().text,
        }


def _table(rows: list[dict], text_width: int = 60) -> str:
    def short(text: str) -> str:
        text = text.replace("\n", " ")
        return text if len(text) <= text_width else text[: text_width - 1] + "…"

    cells = [[str(r[k]) if k != "text" else short(r[k]) for k in KEYS] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(KEYS)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(KEYS, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m emgtf.inspect", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="emg2qwerty session files (.hdf5)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    args = parser.parse_args(argv)
    rows = [summarize(p) for p in args.paths]
    print(json.dumps(rows, ensure_ascii=False, indent=2) if args.json else _table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(run(main, "emgtf.inspect"))
