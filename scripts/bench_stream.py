"""Streaming cost: CPU time per chunk and key latency of the TDS model, greedy and LM beam.

    python scripts/benchmark.py stream [--checkpoint PATH] [--seconds 60] [--chunk-ms 40] [--lm PATH] [--threads N]

Replays a generated session (emgtf.synth, data set seed 0) through a StreamingDecoder with
emgtf.inference.replay, as fast as it goes: once with greedy decoding, once with the default beam
search (beam 50) fused with an LM (--lm, else the default LM if built, else the Reuters fixture);
for a model with an incremental step (the TDS baseline), also once greedy through the windowed
path (each push re-running the model over the kept receptive field), and greedy and LM beam
through its TFLite step (exported to a temporary folder: model.tflite, float32, and
model_int8.tflite, int8 weights), side by side; then the steps alone (Keras, TFLite float32 and
int8), called in turn on each chunk of the session (``step_*`` keys).
The model is --checkpoint, else Meta's full-size TDS baseline with untrained (seeded) weights:
the CPU figures hold for any weights; an untrained model's keys, and so its latencies, are
noise. Latency of a key: from its press to the first chunk whose output shows it; the model's
right context (the signal after an emission's centre that it reads) is reported beside it.
Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_decode import FIXTURE_LM  # noqa: E402

from emgtf.decoding import BeamSearchDecoder, GreedyDecoder  # noqa: E402
from emgtf.decoding.lm import default_lm_path  # noqa: E402


def figures(name: str, result) -> dict:
    cpu = np.percentile(result.chunk_cpu, [50, 99]) * 1000
    out = {f"{name}_ms_per_chunk_median": round(float(cpu[0]), 3),
           f"{name}_ms_per_chunk_p99": round(float(cpu[1]), 3),
           f"{name}_cer": round(result.rates["CER"], 2), f"{name}_keys_matched": len(result.latencies)}
    if len(result.latencies):
        for q, value in zip((50, 90, 99), np.percentile(result.latencies, [50, 90, 99]) * 1000):
            out[f"{name}_latency_ms_{'median' if q == 50 else f'p{q}'}"] = round(float(value), 1)
    return out


def alternate_steps(steps: dict, emg: np.ndarray, chunk: int, skip: int = 25) -> dict:
    """CPU ms per chunk (median, p99) of each step alone, the steps called in turn on every
    chunk of ``emg`` (so load from other jobs hits them alike); the first ``skip`` calls aside."""
    states = {name: step.initial_state() for name, step in steps.items()}
    times = {name: [] for name in steps}
    for start in range(0, len(emg) - chunk + 1, chunk):
        piece = emg[start : start + chunk]
        for name, step in steps.items():
            cpu = time.process_time()
            states[name], _ = step(states[name], piece)
            times[name].append(time.process_time() - cpu)
    out = {}
    for name, cpu in times.items():
        median, p99 = np.percentile(np.asarray(cpu[skip:]) * 1000, [50, 99])
        out |= {f"step_{name}_ms_median": round(float(median), 3), f"step_{name}_ms_p99": round(float(p99), 3)}
    return out


def main(argv: list[str]) -> int:
    from emgtf.cli.parsing import ArgumentParser

    parser = ArgumentParser(prog="benchmark.py stream", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="a .keras checkpoint or export")
    parser.add_argument("--seconds", type=float, default=60.0, help="session length (default 60)")
    parser.add_argument("--chunk-ms", type=float, default=40.0, help="chunk length (default 40)")
    parser.add_argument("--lm", type=Path, default=None, help="LM of the beam run")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of TensorFlow and of the TFLite interpreter (default: their own)")
    args = parser.parse_args(argv)
    from emgtf.inference.steps import limit_threads

    limit_threads(args.threads)

    import keras

    from emgtf import models
    from emgtf.inference.replay import replay
    from emgtf.inference.streaming import StreamingDecoder
    from emgtf.synth import generate_session

    lm_path = args.lm or (default_lm_path() if default_lm_path().is_file() else FIXTURE_LM)
    model = None  # the Keras model, exported to TFLite for its paths
    if args.checkpoint is None:
        keras.utils.set_random_seed(0)
        model, source = models.build("tds_conv_ctc"), "tds_conv_ctc defaults, untrained (seed 0)"

        def streamer(decoder, incremental=True):
            return StreamingDecoder.from_model(model, decoder, incremental=incremental)
    else:
        source = str(args.checkpoint)
        if args.checkpoint.is_file() and args.checkpoint.suffix == ".keras":
            from emgtf.inference.checkpoints import load_checkpoint

            model = load_checkpoint(args.checkpoint)

        def streamer(decoder, incremental=True):
            return StreamingDecoder.load(args.checkpoint, decoder, incremental=incremental,
                                         threads=args.threads, step="keras")  # TFLite timed apart

    greedy = streamer(GreedyDecoder())
    rule = greedy.rule
    chunk = int(round(args.chunk_ms * rule.sample_rate / 1000))
    result = {"benchmark": "stream", "cpu_count": os.cpu_count(), "threads": args.threads, "model": source,
              "chunk_samples": chunk, "chunk_ms": 1000 * chunk / rule.sample_rate,
              "right_context_ms": round(1000 * (rule.center_offset_frames * rule.hop_length + rule.n_fft / 2)
                                        / rule.sample_rate, 1),
              "lm": str(lm_path), "path": greedy.describe()}
    with tempfile.TemporaryDirectory() as folder:
        session = generate_session(folder, seed=0, minutes=args.seconds / 60).path
        replay(greedy, session, chunk_samples=chunk)  # warm-up: traces, caches
        runs = [("greedy", lambda d: streamer(d), GreedyDecoder()),
                ("beam_lm", lambda d: streamer(d), BeamSearchDecoder(lm_path=lm_path))]
        if greedy.step is not None:
            def windowed(decoder):
                # its own warm-up: the windowed path traces each input length
                replay(streamer(GreedyDecoder(), False), session, chunk_samples=chunk)
                return streamer(decoder, False)

            runs.append(("windowed_greedy", windowed, GreedyDecoder()))
        tflite = Path(folder) / "tflite"
        if model is not None and greedy.step is not None:
            from emgtf.errors import EmgtfError
            from emgtf.export import export_model

            try:
                export_model(model, tflite, "tflite", tflite_int8="weights", verify=False,
                             stream_chunk_samples=chunk)
            except EmgtfError as e:  # SplashNet, or a chunk that is no whole number of hops
                result["tflite"] = f"not run: {e}"
            else:
                from emgtf.data import EMGSession
                from emgtf.inference.steps import TFLiteStep

                float_step = StreamingDecoder.load(tflite, threads=args.threads).step
                steps = {"keras": greedy.step, "tflite": float_step,  # the Keras one traced by the warm-up
                         "tflite_int8": TFLiteStep(tflite / "model_int8.tflite", float_step.layout, args.threads)}
                with EMGSession(session) as recording:
                    result.update(alternate_steps(steps, recording.read(), chunk))
                for name, file in (("tflite", "model.tflite"), ("tflite_int8", "model_int8.tflite")):
                    def load(decoder, file=file):
                        return StreamingDecoder.load(tflite / file, decoder, threads=args.threads)

                    runs += [(f"{name}_greedy", load, GreedyDecoder()),
                             (f"{name}_beam_lm", load, BeamSearchDecoder(lm_path=lm_path))]
        for name, make, decoder in runs:
            run = replay(make(decoder), session, chunk_samples=chunk)
            result.update(figures(name, run))
        result["seconds"] = run.seconds
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
