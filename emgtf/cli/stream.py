"""``python -m emgtf.stream model=CKPT_OR_EXPORT session=SESSION [realtime=true] [chunk_ms=40] [decoder=greedy|beam] [lm=PATH] [threads=N]``

SESSION: an emg2qwerty ``.hdf5`` file or a BIDS session (its ``.bdf``, ``emg`` or ``ses-`` folder).
Replays a session file as a live stream of EMG chunks through a streaming decoder (see
``emgtf.inference.streaming``), shows the text growing, then prints the final keys and text,
the CER against the keystrokes and the latency and CPU statistics (see
``emgtf.inference.replay``).
"""

from __future__ import annotations

import sys

from emgtf.cli.parsing import ArgumentParser
from emgtf.cli.stream_lsl import add_lsl_arguments, run_lsl, wants_lsl
from emgtf.cli.transcribe import _decoder, _describe_decoder, add_session_model_and_decoder
from emgtf.console import console_log
from emgtf.errors import EmgtfError

PROG = "python -m emgtf.stream"
PLAIN_EVERY_SECONDS = 5.0  # of signal, between the progress lines of a non-terminal stdout


def _parser():
    parser = ArgumentParser(
        prog=PROG,
        description="Decode a session file as if it were streamed live, chunk by chunk; show the "
        "text as it grows, then the CER, key latencies and CPU time per chunk.",
        epilog="examples:\n"
        "  python -m emgtf.stream model=runs/X/best.keras session=session.hdf5 realtime=true\n"
        "  python -m emgtf.stream model=exports/X session=session.hdf5 decoder=beam lm=default chunk_ms=40\n"
        "  python -m emgtf.stream --model exports/X session.hdf5 --chunk-ms 40   (the same, as flags)\n"
        "  emgtf stream source=lsl name=wristband model=exports/X  (a live LSL stream: docs/guides/live.md)",
    )
    add_session_model_and_decoder(parser)
    parser.add_argument("--realtime", action="store_true",
                        help="feed chunks at the recording's pace (default: as fast as possible)")
    parser.add_argument("--chunk-ms", type=float, default=40.0,
                        help="milliseconds of signal per chunk (default 40)")
    parser.add_argument("--context-seconds", type=float, default=4.0,
                        help="signal each push re-reads for recurrent (unidirectional) models (default 4)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of TensorFlow and of a TFLite export's interpreter (default: "
                        "their own; 1 costs the TDS step less CPU)")
    add_lsl_arguments(parser)
    return parser


class _Display:
    """The growing text: one live line redrawn by rich on a terminal, else a plain line every
    few seconds of signal."""

    def __init__(self, stream):
        self.stream = stream
        self.live = None
        self.next_plain = PLAIN_EVERY_SECONDS
        if stream.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live("", console=Console(file=stream), auto_refresh=False, transient=True)
            self.live.start()

    @staticmethod
    def _line(update, seconds: float, width: int) -> str:
        from emgtf.inference.transcription import apply_keys

        text = apply_keys(update.committed).replace("\n", " ⏎ ")
        partial = apply_keys(update.partial).replace("\n", " ⏎ ")
        shown = (text + ("[" + partial + "]" if partial else ""))[-width:]
        return f"[{seconds:7.1f} s] {shown}"

    def __call__(self, update, seconds: float) -> None:
        if self.live is not None:
            from rich.text import Text

            width = max(20, self.live.console.width - 12)
            self.live.update(Text(self._line(update, seconds, width)), refresh=True)
        elif seconds >= self.next_plain:
            print(self._line(update, seconds, 100), file=self.stream, flush=True)
            self.next_plain = seconds + PLAIN_EVERY_SECONDS

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not args.chunk_ms > 0:
        raise EmgtfError(f"chunk_ms must be > 0, got {args.chunk_ms}")
    if not args.context_seconds > 0:
        raise EmgtfError(f"context_seconds must be > 0, got {args.context_seconds}")
    decoder = _decoder(args.decoder, args.lm)
    if wants_lsl(args):
        return run_lsl(args, prog=PROG, decoder=decoder, describe_decoder=_describe_decoder, display_factory=_Display)
    from emgtf.data import EMGSession
    from emgtf.inference.steps import limit_threads

    limit_threads(args.threads)

    with EMGSession(args.session):  # a bad file fails before the model loads
        pass
    from emgtf.inference.replay import replay
    from emgtf.export.step_cache import load_streamer
    from emgtf.inference.transcription import Transcript

    streamer = load_streamer(args.model, decoder, context_seconds=args.context_seconds,
                             threads=args.threads, log=console_log("emgtf"))
    rule = streamer.rule
    chunk_samples = max(1, round(args.chunk_ms * rule.sample_rate / 1000))
    print(
        f"emgtf.stream: {streamer.runner.family} from {streamer.runner.source} "
        f"({streamer.reach.describe()}; {streamer.describe()}), {_describe_decoder(decoder)}, chunks of {chunk_samples} "
        f"samples, {'real time' if args.realtime else 'as fast as possible'}",
        file=sys.stderr,
        flush=True,
    )
    display = _Display(sys.stdout)
    try:
        result = replay(streamer, args.session, chunk_samples=chunk_samples,
                        realtime=args.realtime, on_update=display)
    finally:
        display.close()
    transcript = Transcript(result.session, result.prediction, result.target, result.rates,
                            round(result.seconds * rule.sample_rate))
    print(transcript.render())
    print(result.latency_line())
    print(result.cpu_line(), flush=True)
    return 0
