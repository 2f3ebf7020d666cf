"""``python -m emgtf.transcribe model=EXPORT_DIR_OR_CHECKPOINT session=SESSION [decoder=greedy|beam] [lm=PATH]``

Decodes a whole session file and prints the keys typed, the text they leave, the keystrokes' text
and the CER (see ``emgtf.inference.transcription``).
"""

from __future__ import annotations

import sys

from emgtf.cli.parsing import ArgumentParser
from emgtf.errors import EmgtfError
from emgtf.inference.transcription import DEFAULT_CHUNK_SECONDS, DEFAULT_CONTEXT_SECONDS, check_chunking

PROG = "python -m emgtf.transcribe"
SESSION_HELP = "session: an emg2qwerty .hdf5 file or a BIDS session (its .bdf, emg or ses- folder)"


def _decoder(kind: str | None, lm):
    """Greedy, or beam search (the reference's settings) with the KenLM file ``lm`` if given;
    ``kind`` None means beam search when there is an LM, else greedy."""
    from emgtf.decoding import make_decoder

    kind = kind or ("beam" if lm is not None else "greedy")
    if kind == "greedy":
        if lm is not None:
            raise EmgtfError("lm= needs decoder=beam (greedy decoding uses no language model)")
        return make_decoder(kind="greedy")
    return make_decoder(kind="beam", lm_path=lm)


def add_session_model_and_decoder(parser) -> None:
    """The arguments emgtf.transcribe and emgtf.stream share: the session, the model, the decoder."""
    parser.add_argument("session", help=SESSION_HELP)
    parser.add_argument(
        "--model", "--checkpoint", dest="model", required=True,
        help="export folder (python -m emgtf.export) or .keras checkpoint (checkpoint= is the same key)",
    )
    parser.add_argument("--decoder", choices=("greedy", "beam"), default=None,
                        help="CTC decoder (default: greedy, or beam when lm= is given)")
    parser.add_argument("--lm", default=None,
                        help="KenLM character model for beam search: an ARPA/binary file, or 'default'")


def _describe_decoder(decoder) -> str:
    lm = getattr(decoder, "lm", None)
    if not hasattr(decoder, "beam_size"):
        return "greedy decoding"
    with_lm = f" with LM {lm.path}" if lm is not None else ""
    return f"beam search (beam {decoder.beam_size}){with_lm}"


def _parser():
    parser = ArgumentParser(
        prog=PROG,
        description="Decode the typing in a session file with an exported model or a checkpoint; "
        "print the keys, the text they leave, and the CER when the file has keystrokes.",
        epilog="examples:\n"
        "  python -m emgtf.transcribe model=exports/X session=session.hdf5\n"
        "  python -m emgtf.transcribe checkpoint=runs/X/best.keras session=session.hdf5 lm=default\n"
        "  python -m emgtf.transcribe --model exports/X session.hdf5        (the same, as flags)",
    )
    add_session_model_and_decoder(parser)
    parser.add_argument(
        "--chunk-seconds", type=float, default=DEFAULT_CHUNK_SECONDS,
        help=f"emissions kept per chunk, in seconds (default {DEFAULT_CHUNK_SECONDS:g})",
    )
    parser.add_argument(
        "--context-seconds", type=float, default=DEFAULT_CONTEXT_SECONDS,
        help=f"extra signal on each side of a chunk (default {DEFAULT_CONTEXT_SECONDS:g})",
    )
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    decoder = _decoder(args.decoder, args.lm)
    check_chunking(args.chunk_seconds, args.context_seconds)
    from emgtf.data import EMGSession

    with EMGSession(args.session):  # a bad file fails before the model loads
        pass
    from emgtf.inference.runners import load_runner
    from emgtf.inference.transcription import transcribe

    runner = load_runner(args.model)
    transcript = transcribe(
        runner,
        args.session,
        decoder=decoder,
        chunk_seconds=args.chunk_seconds,
        context_seconds=args.context_seconds,
    )
    seconds = transcript.num_samples / runner.rule.sample_rate
    print(
        f"emgtf.transcribe: {transcript.session} ({seconds:.1f} s), {runner.family} from "
        f"{runner.source}, {_describe_decoder(decoder)}, {len(transcript.chunks)} chunk(s)",
        file=sys.stderr,
        flush=True,
    )
    print(transcript.render(), flush=True)
    return 0

