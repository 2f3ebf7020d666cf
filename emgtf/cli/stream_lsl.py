"""``emgtf stream source=lsl name=NAME model=M`` : the LSL source of ``emgtf.cli.stream``.

Resolves and checks the stream (one line if it cannot be decoded) before the model loads, then
decodes it live (``emgtf.live.decode``) until the replay it follows ends, the outlet stays
away for ``timeout`` seconds, or Ctrl-C; publishes the decoded keys as an LSL marker stream
(``markers=``, default ``emgtf-keys``) and, with ``jsonl=true``, as JSON lines on stdout (then
the report goes to stderr and a last ``summary`` line ends stdout).
"""

from __future__ import annotations

import json
import sys

from emgtf.console import console_log
from emgtf.errors import EmgtfError

DEFAULT_MARKERS = "emgtf-keys"


def add_lsl_arguments(parser) -> None:
    """The LSL options of emgtf.stream, and its session made optional (an LSL stream instead)."""
    for action in parser._actions:  # the positional session of add_session_model_and_decoder
        if action.dest == "session":
            action.nargs, action.default, action.required = "?", None, False
            action.help = ("session: an emg2qwerty .hdf5 file or a BIDS session (its .bdf, emg or ses- folder); "
                           "or source=lsl and a stream")
    group = parser.add_argument_group("live LSL source (source=lsl)")
    group.add_argument("--source", choices=("file", "lsl"), default=None,
                       help="file (the session, default) or lsl (a live stream: name=, type=, source_id=)")
    group.add_argument("--name", default=None, help="the LSL stream's name")
    group.add_argument("--type", default=None, help="the LSL stream's type (e.g. EMG)")
    group.add_argument("--source-id", default=None, help="the LSL stream's source id (among streams of one name)")
    group.add_argument("--channels", default=None,
                       help="the 32 stream channels to decode, left band 1..16 then right: indices, "
                       "ranges a-b or labels, e.g. 0-15,16-31 (default: a 32-channel stream as it is)")
    group.add_argument("--resample", action="store_true",
                       help="resample a stream whose nominal rate is not 2000 Hz (else refused)")
    group.add_argument("--truth", default=None,
                       help="a replay's key-press marker stream (emgtf replay: NAME-keystrokes): CER, key "
                       "latencies, and the end of the replay ends the stream")
    group.add_argument("--markers", default=DEFAULT_MARKERS,
                       help=f"name of the decoded-key marker stream (default {DEFAULT_MARKERS}; none: no outlet)")
    group.add_argument("--jsonl", action="store_true",
                       help="key events as JSON lines on stdout, then a summary line (report on stderr)")
    group.add_argument("--timeout", type=float, default=None,
                       help="seconds to wait for a lost or silent stream before stopping (default: until Ctrl-C)")
    group.add_argument("--resolve-timeout", type=float, default=5.0,
                       help="seconds to look for the stream (default 5)")
    group.add_argument("--gap-ms", type=float, default=50.0,
                       help="a longer gap between timestamps restarts the decoder (default 50)")


def wants_lsl(args) -> bool:
    """Whether the arguments ask for the LSL source; refuses a mix or neither."""
    lsl = args.source == "lsl" or (args.source is None and args.session is None
                                   and any(v is not None for v in (args.name, args.type, args.source_id)))
    if lsl and args.session is not None:
        raise EmgtfError("give a session file or source=lsl with a stream, not both")
    if not lsl and args.session is None:
        raise EmgtfError("give a session file (session=FILE), or source=lsl name=NAME for a live stream")
    if lsl and all(v is None for v in (args.name, args.type, args.source_id)):
        raise EmgtfError("source=lsl needs name=NAME, type=TYPE or source_id=ID")
    if not lsl and any(v is not None for v in (args.name, args.type, args.source_id, args.truth, args.channels)):
        raise EmgtfError("name=, type=, source_id=, truth= and channels= are for source=lsl; a session file "
                         "is replayed without them")
    return lsl


def run_lsl(args, *, prog: str, decoder, describe_decoder, display_factory) -> int:
    """The LSL source; ``display_factory(stream)``: the command's growing-text display."""
    from emgtf import interrupts
    from emgtf.live.inlet import EMGInlet, StreamLost, check_emg_stream
    from emgtf.live.keys import JsonLines, KeyOutlet
    from emgtf.live.lsl import describe
    from emgtf.live.resolve import find_again, find_stream
    from emgtf.live.truth import TruthInlet

    if not args.resolve_timeout > 0:
        raise EmgtfError(f"resolve_timeout must be > 0, got {args.resolve_timeout}")
    if args.timeout is not None and not args.timeout > 0:
        raise EmgtfError(f"timeout must be > 0, got {args.timeout}")
    if not args.gap_ms > 0:
        raise EmgtfError(f"gap_ms must be > 0, got {args.gap_ms}")
    report = sys.stderr if args.jsonl else sys.stdout

    def log(line: str) -> None:
        print(f"{prog}: {line}", file=sys.stderr, flush=True)

    # The key outlet first, so that its consumers can connect while the EMG stream is looked for
    # (markers sent before a consumer connects do not reach it).
    sinks = []
    if args.markers.lower() != "none":
        sinks.append(KeyOutlet(args.markers, f"emgtf-keys:{args.source_id or args.name or args.type}"))
    if args.jsonl:
        sinks.append(JsonLines(sys.stdout))
    info = find_stream(name=args.name, type=args.type, source_id=args.source_id, timeout=args.resolve_timeout)
    channel_map = check_emg_stream(info, channels=args.channels, resample=args.resample)
    truth_info = None
    if args.truth is not None:
        truth_info = find_stream(name=args.truth, timeout=args.resolve_timeout)
        from emgtf.live.lsl import pylsl

        if truth_info.channel_format() != pylsl().cf_string:
            raise EmgtfError(f"truth: LSL stream {describe(truth_info)} is not a marker stream of strings")

    from emgtf.export.step_cache import load_streamer
    from emgtf.inference.steps import limit_threads
    from emgtf.live.decode import LiveDecoder, warm_up

    limit_threads(args.threads)
    streamer = load_streamer(args.model, decoder, context_seconds=args.context_seconds, threads=args.threads,
                             log=console_log("emgtf"))
    chunk_samples = max(1, round(args.chunk_ms * streamer.rule.sample_rate / 1000))
    warm_up(streamer, chunk_samples)
    truth = TruthInlet(truth_info) if truth_info is not None else None
    try:
        inlet = EMGInlet(info)
    except StreamLost:
        raise EmgtfError(f"LSL stream {describe(info)} went away while connecting") from None
    log(f"{streamer.runner.family} from {streamer.runner.source} ({streamer.describe()}), "
        f"{describe_decoder(decoder)}, chunks of {chunk_samples} samples; decoding LSL stream {describe(info)}, "
        f"clock offset {1000 * inlet.offset:+.1f} ms"
        + (f"; keys to marker stream '{args.markers}'" if args.markers.lower() != "none" else ""))
    live = LiveDecoder(streamer, inlet, channel_map, chunk_samples=chunk_samples, sinks=sinks, truth=truth,
                       timeout=args.timeout, gap_seconds=args.gap_ms / 1000, resample=args.resample,
                       find_again=find_again, log=log)
    display = None if args.jsonl else display_factory(sys.stdout)
    live.on_update = display
    try:
        with interrupts.deferred():
            live.run(should_stop=interrupts.requested)
    except KeyboardInterrupt:
        if live.ended != "stopped (Ctrl-C)":  # a second Ctrl-C, mid-push: no report
            raise
    finally:
        if display is not None:
            display.close()
        if truth is not None:
            truth.poll()  # the last presses, before leaving
            truth.close()
        inlet.close()
    result = live.finish()
    from emgtf.inference.transcription import Transcript

    transcript = Transcript(f"LSL stream '{info.name()}'", result.prediction, result.target or None,
                            result.rates, round(result.seconds * streamer.rule.sample_rate))
    print(transcript.render(), file=report)
    print(result.latency_line(), file=report)
    print(result.cpu_line(), file=report, flush=True)
    if args.jsonl:
        print(json.dumps(result.summary(), ensure_ascii=False), flush=True)
    return 0
