"""``emgtf replay session=FILE [name=emgtf-replay] [speed=1] [wait=true]``

A virtual wristband: publishes a session file as an LSL EMG stream (32 channels, 2 kHz, at the
recording's pace) and its keystrokes as an LSL marker stream ``NAME-keystrokes`` (see
``emgtf.live.wristband``), for ``emgtf stream source=lsl name=NAME truth=NAME-keystrokes``,
LabRecorder or any LSL consumer.
"""

from __future__ import annotations

import sys

from emgtf.cli.parsing import ArgumentParser
from emgtf.errors import EmgtfError

PROG = "python -m emgtf.replay"
DEFAULT_NAME = "emgtf-replay"


def _parser():
    parser = ArgumentParser(
        prog=PROG,
        description="Publish a session file as a live LSL EMG stream (32 float32 channels at 2 kHz, "
        "at the recording's pace) and its key presses as an LSL marker stream: a virtual wristband.",
        epilog="examples:\n"
        "  emgtf replay session=session.hdf5\n"
        "  emgtf replay session=bids/sub-00000000/ses-1620000000 speed=2   (a BIDS session)\n"
        "  emgtf stream source=lsl name=emgtf-replay truth=emgtf-replay-keystrokes model=exports/X",
    )
    parser.add_argument("session", help="session: an emg2qwerty .hdf5 file or a BIDS session (its .bdf, emg or "
                        "ses- folder)")
    parser.add_argument("--name", default=DEFAULT_NAME,
                        help=f"the EMG stream's name (default {DEFAULT_NAME}); the key presses are NAME-keystrokes")
    parser.add_argument("--source-id", default=None,
                        help="the EMG stream's source id (default emgtf-replay:<session name>)")
    parser.add_argument("--speed", type=float, default=1.0, help="pace: 2 plays twice as fast (default 1)")
    parser.add_argument("--chunk-ms", type=float, default=40.0, help="milliseconds of signal per push (default 40)")
    parser.add_argument("--wait", type=float, default=None,
                        help="seconds to wait for a consumer before starting (default: until one comes; "
                        "0: start at once)")
    parser.add_argument("--linger", type=float, default=10.0,
                        help="seconds the streams stay up at most after the end, until their consumers "
                        "leave (default 10)")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.wait is not None and args.wait < 0:
        raise EmgtfError(f"wait must be >= 0, got {args.wait}")
    if args.linger < 0:
        raise EmgtfError(f"linger must be >= 0, got {args.linger}")
    from emgtf import interrupts
    from emgtf.data import EMGSession
    from emgtf.live.wristband import publish_session

    with EMGSession(args.session):  # a bad file fails before LSL starts
        pass

    def log(line: str) -> None:
        print(f"{PROG}: {line}", file=sys.stderr, flush=True)

    with interrupts.deferred():
        done = publish_session(args.session, name=args.name, source_id=args.source_id, speed=args.speed,
                               chunk_ms=args.chunk_ms, wait=args.wait, linger=args.linger, log=log,
                               should_stop=interrupts.requested)
        print(f"published {done.samples} samples ({done.seconds:.1f} s of signal) and {done.keys} key presses "
              f"in {done.wall_seconds:.1f} s", flush=True)
    return 0
