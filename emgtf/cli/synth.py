"""``python -m emgtf.synth``: write a synthetic emg2qwerty-format data set.

    python -m emgtf.synth out=DIR [users=N] [sessions=N] [minutes=M] [eval_minutes=M] [seed=S]
                          [overwrite=true] [format=hdf5|bids] [events=EVENTS_TSV]

(or the same as flags: ``--out DIR --users N ... --overwrite --format bids``).

Writes DIR/<session>.hdf5, DIR/metadata.csv and DIR/split.yaml (per user one val and one test
session, the rest train). The same arguments always write the same bytes. ``format=bids`` writes
DIR as a BIDS root laid out as the NM000104 release; ``events=FILE`` writes one session typing a real
session's keystroke timeline.
"""

from __future__ import annotations

import argparse
import time

from emgtf.cli.parsing import ArgumentParser
from emgtf.synth import dataset

PROG = "emgtf.synth"


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got '{text}'") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got '{text}'")
        return value

    return parse


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got '{text}'")
    return value


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=f"python -m {PROG}", description="Write a synthetic sEMG typing data set "
                "(emg2qwerty format): session files, metadata.csv and split.yaml.")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--users", type=_positive(int), default=1, help="number of users (default 1)")
    p.add_argument("--sessions", type=_positive(int), default=dataset.DEFAULT_TRAIN_SESSIONS + 2,
                   help="sessions per user, one val and one test among them (default %(default)s)")
    p.add_argument("--minutes", type=_positive(float), default=dataset.DEFAULT_TRAIN_MINUTES,
                   help="length of each train session in minutes (default %(default)s)")
    p.add_argument("--eval-minutes", type=_positive(float), default=None,
                   help="length of each val and test session (default: --minutes)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace data set files already in --out")
    p.add_argument("--format", choices=dataset.FORMATS, default="hdf5",
                   help="hdf5: <session>.hdf5 files as Meta's release; bids: a BIDS root laid out as the "
                   "NM000104 release (BDF + sidecars) (default %(default)s)")
    p.add_argument("--events", default=None, metavar="EVENTS_TSV",
                   help="a real session's events.tsv (NM000104): write one synthetic session typing "
                   "exactly its keys at its times (--users/--sessions/--minutes do not apply)")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    t = time.perf_counter()
    if args.events is not None:
        info = dataset.generate_from_events(args.out, args.events, seed=args.seed, overwrite=args.overwrite,
                                            format=args.format)
        print(f"wrote {info.path} ({info.duration_mins:.2f} min, {info.num_keystrokes} keystrokes, "
              f"{time.perf_counter() - t:.1f} s)")
        return 0
    split = dataset.generate_dataset(
        args.out, users=args.users, sessions=args.sessions, minutes=args.minutes,
        eval_minutes=args.eval_minutes, seed=args.seed, overwrite=args.overwrite, log=print,
        format=args.format,
    )
    print(f"split file: {split} ({time.perf_counter() - t:.1f} s)")
    return 0

