"""Live decoding over LSL, end to end: key latency and CPU per chunk, greedy and LM beam.

    python scripts/benchmark.py live [checkpoint=PATH] [model=small_tds] [seconds=60] [session=0]
                                     [chunk_ms=40] [lm=PATH] [threads=1] [decoders=greedy,beam_lm]

(or as flags: --checkpoint PATH --seconds 60 ...).

For each decoder: ``emgtf replay`` publishes a generated session (emgtf.synth: session --session
of user 0 of data set seed 0, --seconds long) at the recording's pace in one process, ``emgtf
stream source=lsl ... truth=NAME-keystrokes jsonl=true`` decodes it in another, both over the loopback (a loopback lsl_api.cfg unless
LSLAPICFG is set). The stream's summary line gives: CPU per chunk (process CPU time of each
push: the model step, the search, and liblsl's receiving threads meanwhile), the pipeline delay
(from the LSL time of a chunk's last sample to its key markers) and the key latency (from a
ground-truth press to the marker of the decoded key matched to it). The model is --checkpoint,
else the --model preset (default small_tds, the streaming preset) with untrained, seeded
weights: CPU and pipeline delay hold for any weights; an untrained model's keys, and so its key
latencies, are noise. A checkpoint trained on the default synthetic data set (``emgtf synth``,
seed 0) has seen its train sessions: give ``--session 4``, that set's test session, so that the
key latencies are a held-out session's. Prints one JSON line with the CPU model and the load
average.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_pair(session: Path, model: Path, decoder_args: list[str], args, env: dict) -> dict:
    """One replay process and one stream process; the stream's summary line."""
    name = f"emgtf-bench-{uuid.uuid4().hex[:8]}"
    stream = subprocess.Popen(
        [sys.executable, "-m", "emgtf.stream", "source=lsl", f"name={name}", f"truth={name}-keystrokes",
         f"model={model}", "jsonl=true", "markers=none", f"chunk_ms={args.chunk_ms}", "timeout=30",
         "resolve_timeout=300", *([f"threads={args.threads}"] if args.threads else []), *decoder_args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    replay = subprocess.Popen(
        [sys.executable, "-m", "emgtf.replay", f"session={session}", f"name={name}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    out, err = stream.communicate(timeout=args.seconds * 4 + 600)
    replay.communicate(timeout=120)
    if stream.returncode != 0:
        raise SystemExit(f"benchmark.py live: the stream failed: {err.strip().splitlines()[-1:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    summary.pop("text", None)
    summary.pop("truth", None)
    summary.pop("event", None)
    summary.pop("stream", None)
    return summary


def main(argv: list[str]) -> int:
    from emgtf.cli.parsing import ArgumentParser

    # The commands' parser: every option is also key=value (seconds=60 is --seconds 60).
    parser = ArgumentParser(prog="benchmark.py live", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="a .keras checkpoint or export")
    parser.add_argument("--model", default="small_tds", help="model preset when no checkpoint (default small_tds)")
    parser.add_argument("--seconds", type=float, default=60.0, help="session length (default 60)")
    parser.add_argument("--session", type=int, default=0,
                        help="synthetic session number (user 0, data set seed 0) to replay (default 0; 4 is "
                        "the default synthetic data set's test session)")
    parser.add_argument("--chunk-ms", type=float, default=40.0, help="chunk length (default 40)")
    parser.add_argument("--lm", type=Path, default=None, help="LM of the beam run (default: the default LM, "
                        "else the Reuters fixture)")
    parser.add_argument("--threads", type=int, default=1, help="threads of the stream's model (default 1)")
    parser.add_argument("--decoders", default="greedy,beam_lm", help="greedy, beam_lm or both (default)")
    args = parser.parse_args(argv)

    from bench_decode import FIXTURE_LM

    from emgtf.decoding.lm import default_lm_path

    lm_path = args.lm or (default_lm_path() if default_lm_path().is_file() else FIXTURE_LM)
    decoders = {"greedy": ["decoder=greedy"], "beam_lm": ["decoder=beam", f"lm={lm_path}"]}
    chosen = [d.strip() for d in args.decoders.split(",") if d.strip()]
    unknown = [d for d in chosen if d not in decoders]
    if unknown:
        parser.error(f"decoders=: unknown {unknown}; known: {sorted(decoders)}")
    if args.checkpoint is not None and not args.checkpoint.exists():
        parser.error(f"checkpoint={args.checkpoint}: no such file or folder")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        env = dict(os.environ)
        if "LSLAPICFG" not in env:
            from emgtf.live.loopback import write_loopback_config

            env["LSLAPICFG"] = str(write_loopback_config(folder / "lsl_api.cfg", log_level=-3))
        import keras

        from emgtf import config, models
        from emgtf.synth import generate_session

        if args.checkpoint is None:
            from omegaconf import OmegaConf

            hp = OmegaConf.to_container(config.compose("fit", [f"model={args.model}"]).model)
            family = hp.pop("family")
            keras.utils.set_random_seed(0)
            model_path = folder / "model.keras"
            models.build(family, **hp).save(model_path)
            source = f"{args.model} ({family}), untrained (seed 0)"
        else:
            model_path, source = args.checkpoint, str(args.checkpoint)
        session = generate_session(folder, seed=0, session=args.session, minutes=args.seconds / 60).path
        result = {"benchmark": "live", "cpu_count": os.cpu_count(), "cpu_model": cpu_model(),
                  "threads": args.threads, "model": source, "chunk_ms": args.chunk_ms, "lm": str(lm_path),
                  "seconds": args.seconds, "session": f"synthetic seed 0 user 0 session {args.session}",
                  "lsl": env["LSLAPICFG"]}
        for name in chosen:
            for key, value in run_pair(session, model_path, decoders[name], args, env).items():
                result[f"{name}_{key}"] = value
        result["load_average"] = [round(x, 2) for x in os.getloadavg()]
        result["lsl"] = "loopback config" if result["lsl"].startswith(str(folder)) else result["lsl"]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
