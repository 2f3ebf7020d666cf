"""Whole-session evaluation: time and peak memory of emgtf's against the PyTorch reference's, on
the same long synthetic session.

    python scripts/benchmark.py evaluate [minutes=20] [chunk.seconds=10] [chunk.batch=4]
                                         [torch=true] [whole=false] [threads=0] [seed=0]

A session of ``minutes`` of white noise (the reference's scale, a few keys) and a Meta-size TDS-Conv
CTC checkpoint with random weights are written to a temporary folder. Then, each in its own
process (so that each process's peak RSS is its own, TensorFlow or PyTorch included):

- ``emgtf``: ``emgtf.inference.evaluation.evaluate_model`` on the session, greedy decoding, with the
  ``chunk`` options (``emgtf.evaluate``'s defaults unless given);
- ``torch`` (``torch=true``): tests/reference/tds_torch.py's model (same sizes, random weights)
  on the whole session at once (batch 1, ``torch.no_grad``), as the reference's test loop does,
  and greedy decoding;
- ``emgtf_whole`` (``whole=true``): emgtf with ``chunk.seconds=null``, one forward pass over the
  whole session, as before chunking.

``seconds``: the evaluation itself (session read, forward passes, decoding); ``process_seconds``:
the whole process, imports and model loading included; ``peak_rss_mb``: the process's maximum
resident set (``ru_maxrss``; the process is started by a small launcher, so none of this
process's memory counts in it). ``speed_ratio`` is torch's seconds over emgtf's (above 1: emgtf is
faster); ``threads`` > 0 sets both frameworks' thread counts (0: their defaults, every core).
The load average is printed with the result: on a shared machine, timings are only comparable
within one run. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from bench_train import cpu_model  # scripts/ is on sys.path (benchmark.py)

DEFAULTS = {"minutes": 20.0, "chunk": {"seconds": 10.0, "batch": 4}, "torch": True, "whole": False,
            "threads": 0, "seed": 0}
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _options(argv: list[str]) -> dict:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from emgtf.errors import EmgtfError

    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        sys.exit(0)
    options = OmegaConf.create(DEFAULTS)
    OmegaConf.set_struct(options, True)
    try:
        return OmegaConf.to_container(OmegaConf.merge(options, OmegaConf.from_dotlist(argv)))
    except OmegaConfBaseException as e:
        raise EmgtfError(f"bad argument: {str(e).splitlines()[0]} (options: {', '.join(DEFAULTS)})") from None


def _write_inputs(folder: str, minutes: float, seed: int) -> tuple[str, str]:
    """(session file, checkpoint): white noise with a few keys, a Meta-size TDS, random weights."""
    import numpy as np

    from emgtf import models
    from emgtf.data.session import write_session

    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * 2000)
    time0 = 1.7e9
    times = time0 + np.arange(n) / 2000.0
    # Written in pieces of a minute: the generator's float64 of a whole hour would not be small.
    emg = np.empty((n, 2, 16), np.float32)
    for start in range(0, n, 120000):
        stop = min(n, start + 120000)
        emg[start:stop] = rng.normal(0.0, 2.5, (stop - start, 2, 16))
    keys = [{"key": "abcdefgh"[i % 8], "start": float(times[i]), "end": float(times[i] + 0.05)}
            for i in range(1000, n - 1000, 1000)]
    path = os.path.join(folder, "long.hdf5")
    write_session(path, time=times, emg_left=emg[:, 0], emg_right=emg[:, 1], keystrokes=keys,
                  prompts=[], session_name="long", user="bench")
    del emg
    checkpoint = os.path.join(folder, "tds.keras")
    models.build("tds_conv_ctc").save(checkpoint)  # emgtf's defaults: Meta's sizes
    return path, checkpoint


def _child(kind: str, session: str, checkpoint: str, opts: dict) -> dict:
    """Runs in the measured process: one evaluation, its wall time."""
    threads = opts["threads"]
    if kind == "torch":
        import numpy as np
        import torch

        from emgtf.charset import charset
        from emgtf.data import EMGSession
        from tests.reference.tds_torch import make_tds_torch

        torch.manual_seed(opts["seed"])
        if threads:
            torch.set_num_threads(threads)
        model = make_tds_torch().eval()
        start = time.perf_counter()
        with EMGSession(session) as s:
            emg = torch.from_numpy(s.read())[None]
        with torch.no_grad():
            log_probs = model(emg)[0].numpy()
        labels = log_probs.argmax(-1)
        keep = (labels != charset().blank) & np.concatenate([[True], labels[1:] != labels[:-1]])
        text = charset().labels_to_str(labels[keep])
        return {"seconds": round(time.perf_counter() - start, 2), "emissions": len(log_probs),
                "chars": len(text), "torch_threads": torch.get_num_threads()}
    from emgtf.cli import configure_process

    configure_process(tensorflow=True)
    if threads:
        from emgtf.inference.steps import limit_threads

        limit_threads(threads)
    from emgtf.decoding import GreedyDecoder
    from emgtf.inference.checkpoints import load_checkpoint
    from emgtf.inference.chunked import Chunking, SessionForward
    from emgtf.inference.evaluation import evaluate_model

    model = load_checkpoint(checkpoint)
    chunking = Chunking(seconds=None) if kind == "emgtf_whole" else Chunking(**opts["chunk"])
    start = time.perf_counter()
    report = evaluate_model(model, [session], GreedyDecoder(), log=None, chunking=chunking)
    return {"seconds": round(time.perf_counter() - start, 2), "mode": SessionForward(model, chunking).describe(),
            "chars": len(report["sessions"][0]["prediction"])}


# Started by a small launcher process: Linux carries a process's resident set at exec into the
# new program's peak (ru_maxrss), so a child forked straight from a process holding TensorFlow or
# a session (this one, or pytest) would report that process's size as its own peak.
_LAUNCHER = """
import json, os, subprocess, sys
p = subprocess.Popen(json.loads(sys.argv[1]), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
out, err = p.communicate()
print(json.dumps({"status": p.returncode, "out": out, "err": err[-4000:]}))
"""


def _measure(kind: str, session: str, checkpoint: str, opts: dict) -> dict:
    """Runs ``_child`` in a fresh process (through a small launcher); its result, wall time and
    peak RSS (the child's ``ru_maxrss``, which it reports itself)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, os.path.abspath(__file__), "_child", kind, session, checkpoint, json.dumps(opts)]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, json.dumps(command)], capture_output=True,
                          text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{kind}: the launcher failed: {done.stderr.strip()[-2000:]}")
    launched = json.loads(done.stdout.strip().splitlines()[-1])
    if launched["status"] != 0:
        raise RuntimeError(f"{kind} failed (status {launched['status']}): {launched['err'].strip()[-2000:]}")
    result = json.loads(launched["out"].strip().splitlines()[-1])
    result["process_seconds"] = round(wall, 2)
    return result


def main(argv: list[str]) -> int:
    opts = _options(argv)
    with tempfile.TemporaryDirectory(prefix="emgtf-bench-evaluate-") as folder:
        session, checkpoint = _write_inputs(folder, float(opts["minutes"]), int(opts["seed"]))
        result = {"benchmark": "evaluate", "minutes": opts["minutes"], "cpu": cpu_model(),
                  "cores": os.cpu_count(), "load_before": [round(x, 2) for x in os.getloadavg()],
                  "chunk": opts["chunk"], "threads": opts["threads"]}
        result["emgtf"] = _measure("emgtf", session, checkpoint, opts)
        if opts["whole"]:
            result["emgtf_whole"] = _measure("emgtf_whole", session, checkpoint, opts)
        if opts["torch"]:
            result["torch"] = _measure("torch", session, checkpoint, opts)
            result["speed_ratio"] = round(result["torch"]["seconds"] / result["emgtf"]["seconds"], 2)
            result["rss_ratio"] = round(result["torch"]["peak_rss_mb"] / result["emgtf"]["peak_rss_mb"], 2)
        result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        kind, session, checkpoint, opts = sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
        import resource

        result = _child(kind, session, checkpoint, opts)
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KB
        print(json.dumps(result))
    else:
        sys.exit(main(sys.argv[1:]))
