"""The live path end to end over real liblsl on the loopback: ``emgtf replay`` in a separate
process publishes a session (the virtual wristband), ``emgtf stream source=lsl`` decodes it in
this process, and this process also reads the decoded-key marker stream, as another program
would."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pylsl
import pytest

from emgtf import models
from emgtf.inference.replay import replay
from emgtf.export.step_cache import load_streamer
from emgtf.synth import generate_session
from tests.helpers import REPO, make_session_file, run_command, sample_times

TINY_TDS = dict(mlp_features=[16], block_channels=[4, 8], kernel_width=4)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A generated 15 s session, a tiny TDS checkpoint, and the file replay of one by the other."""
    root = tmp_path_factory.mktemp("live")
    keras.utils.set_random_seed(3)
    info = generate_session(root, seed=3, minutes=0.25)
    models.build("tds_conv_ctc", **TINY_TDS).save(root / "tds.keras")
    offline = replay(load_streamer(root / "tds.keras"), info.path, chunk_samples=80)
    return {"root": root, "session": info.path, "ckpt": root / "tds.keras", "offline": offline}


def start_replay(session, name, *args):
    return subprocess.Popen([sys.executable, "-m", "emgtf.replay", f"session={session}", f"name={name}", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


def stream(capsys, setup, name, *args):
    """emgtf stream source=lsl with JSON lines: (result, events, summary)."""
    if not any(a.startswith("model=") for a in args):
        args = (f"model={setup['ckpt']}", *args)
    done = run_command(capsys, "stream", "source=lsl", f"name={name}", "jsonl=true", *args)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[-1]["event"] == "summary"
    return done, lines[:-1], lines[-1]


class MarkerReader(threading.Thread):
    """Reads a marker stream (once it appears) until stopped: [(marker dict, LSL time)]; once
    connected, calls ``then()`` (starts the replay, so that no marker is sent before)."""

    def __init__(self, name, then):
        super().__init__(daemon=True)
        self.name, self.then, self.markers, self.stop = name, then, [], threading.Event()

    def run(self):
        found = []
        while not found and not self.stop.is_set():
            found = pylsl.resolve_byprop("name", self.name, 1, 0.5)
        if not found:
            return
        inlet = pylsl.StreamInlet(found[0], processing_flags=pylsl.proc_clocksync)
        inlet.open_stream(5)
        self.then()
        while True:
            markers, stamps = inlet.pull_chunk(timeout=0.2)
            self.markers += [(json.loads(m[0]), t) for m, t in zip(markers, stamps)]
            if self.stop.is_set() and not markers:
                return


def test_a_replayed_session_decodes_live_to_the_file_replays_text_and_cer(capsys, setup, unique):
    offline = setup["offline"]
    publisher = []
    reader = MarkerReader(unique + "-keys", lambda: publisher.append(start_replay(setup["session"], unique, "speed=4")))
    reader.start()
    try:  # the stream waits for the replay, which starts once the reader has connected
        done, events, summary = stream(capsys, setup, unique, f"truth={unique}-keystrokes",
                                       f"markers={unique}-keys", "timeout=20", "resolve_timeout=30")
    finally:
        publisher = publisher[0]
        out, err = publisher.communicate(timeout=60)
        reader.stop.set()
        reader.join(10)
    assert publisher.returncode == 0, err
    assert out.startswith(f"published 30000 samples (15.0 s of signal) and {len(offline.target)} key presses")
    # The same keys and CER as the file replay of the same model, the same keystrokes aligned.
    assert summary["text"] == offline.prediction and len(offline.prediction) > 10
    assert summary["cer"] == round(offline.rates["CER"], 3)
    assert summary["target_keys"] == len(offline.target) and summary["keys_matched"] == len(offline.latencies)
    assert summary["ended"] == "end of the replay" and summary["gaps"] == 0
    assert summary["chunks"] == 30000 // 80 and summary["seconds"] == 15.0
    assert "latency: median " in done.stderr and "CER: " in done.stderr
    # Greedy: one key event per key, each final; the marker stream carried each event, stamped
    # with the LSL time of its chunk's last sample (the JSON lines' "time").
    assert [e["key"] for e in events] == list(offline.prediction)
    assert all(e["event"] == "key" and e["final"] for e in events)
    assert apply_events(events) == offline.prediction
    assert [m for m, _ in reader.markers] == [{k: v for k, v in e.items() if k not in ("time", "shown")}
                                             for e in events]
    np.testing.assert_allclose([t for _, t in reader.markers], [e["time"] for e in events], atol=1e-3)
    assert all(e["shown"] >= e["time"] for e in events)


def test_a_bids_session_replays_and_decodes_live_to_the_file_replays_text(capsys, setup, unique):
    """The BIDS form of the session (emgtf.data.bids, as the NM000104 release lays it out),
    replayed from its ses- folder: the live keys and CER are the file replay's of the same BIDS
    session, and its events.tsv key presses are the ground truth."""
    from emgtf.data.convert import convert_session

    bdf = convert_session(setup["session"], setup["root"] / "bids")
    folder = bdf.parent.parent  # sub-*/ses-*: a session as a user names it
    assert folder.name.startswith("ses-")
    offline = replay(load_streamer(setup["ckpt"]), bdf, chunk_samples=80)
    assert offline.target == setup["offline"].target  # the HDF5 file's keystrokes, converted
    publisher = start_replay(folder, unique, "speed=4")
    try:
        done, events, summary = stream(capsys, setup, unique, f"truth={unique}-keystrokes", "markers=none",
                                       "timeout=20")
    finally:
        out, err = publisher.communicate(timeout=60)
    assert publisher.returncode == 0, err
    assert out.startswith(f"published 30000 samples (15.0 s of signal) and {len(offline.target)} key presses")
    assert summary["text"] == offline.prediction and len(offline.prediction) > 10
    assert summary["truth"] == offline.target and summary["cer"] == round(offline.rates["CER"], 3)
    assert summary["ended"] == "end of the replay" and summary["gaps"] == 0 and summary["seconds"] == 15.0
    assert [e["key"] for e in events] == list(offline.prediction)


def test_gaps_and_nan_samples_restart_the_decoder_and_are_reported(capsys, setup, unique):
    times = sample_times(16000, "gaps", seed=2)
    emg = np.random.default_rng(0).normal(0, 2.5, (16000, 2, 16)).astype(np.float32)
    emg[9000:9005, 1, 3] = np.nan
    emg[12000, 0, 0] = -np.inf
    path, _ = make_session_file(setup["root"] / "gaps.hdf5", emg=emg, time=times)
    publisher = start_replay(path, unique, "speed=4")
    try:
        done, _, summary = stream(capsys, setup, unique, f"truth={unique}-keystrokes", "markers=none",
                                  "timeout=20")
    finally:
        publisher.communicate(timeout=60)
    steps = np.diff(times)
    expected = int(np.sum(steps / 4 > 0.05))
    assert expected >= 3
    lines = done.stderr.splitlines()
    gap_lines = [line for line in lines if " ms gap (about " in line]
    assert len(gap_lines) == expected, done.stderr
    assert all(line.endswith(": the decoder restarts (keys so far kept)") for line in gap_lines)
    nan_lines = [line for line in lines if "5 samples with NaN or infinite values after LSL time" in line]
    inf_lines = [line for line in lines if "1 sample with NaN or infinite values after LSL time" in line]
    assert len(nan_lines) == 1 and len(inf_lines) == 1, done.stderr
    assert summary["gaps"] == expected + 2 and summary["ended"] == "end of the replay"
    assert summary["seconds"] == pytest.approx((16000 - 6) / 2000, abs=80 / 2000)


def apply_events(events) -> str:
    """The text a consumer of the key markers holds after ``events``."""
    keys: list[str] = []
    final = 0
    for e in events:
        if e["event"] == "retract":
            assert e["index"] == len(keys) - 1 >= final  # only the last, never a committed key
            keys.pop()
        elif e["event"] == "key":
            assert e["index"] == len(keys)
            keys.append(e["key"])
            final = e["index"] + 1 if e["final"] else final
        else:
            assert e["event"] == "commit" and e["index"] == final and keys[final] == e["key"]
            final += 1
    assert final == len(keys)  # at the end every key is committed
    return "".join(keys)


@pytest.mark.slow
def test_a_tflite_step_with_the_lm_beam_decodes_live_as_the_file_replay(capsys, setup, unique):
    """The TFLite export's step and beam search with an LM: the file replay's text; the markers,
    retractions and commits included, add up to it."""
    from emgtf.decoding import BeamSearchDecoder
    from emgtf.export import export_model
    from tests.helpers import FIXTURES

    lm = FIXTURES / "reuters-3-gram-char-lm.arpa"
    folder = setup["root"] / "tflite"
    if not folder.exists():
        export_model(keras.models.load_model(setup["ckpt"]), folder, "tflite", tflite_int8="none", verify=False)
    offline = replay(load_streamer(folder, BeamSearchDecoder(lm_path=lm)), setup["session"], chunk_samples=80)
    publisher = start_replay(setup["session"], unique, "speed=4")
    try:
        done, events, summary = stream(capsys, setup, unique, f"truth={unique}-keystrokes", "markers=none",
                                       "timeout=20", f"model={folder}", "decoder=beam", f"lm={lm}")
    finally:
        publisher.communicate(timeout=60)
    assert "TFLite step model.tflite" in done.stderr
    assert summary["text"] == offline.prediction and summary["cer"] == round(offline.rates["CER"], 3)
    assert apply_events(events) == offline.prediction


def kill_once_connected(replay, *, after: float):
    """Kill a replay process ``after`` seconds after the stream connected to it (its stderr says so)."""
    for line in replay.stderr:
        if "a consumer connected" in line:
            break
    time.sleep(after)
    replay.kill()
    replay.wait()


@pytest.mark.slow
def test_a_killed_outlet_is_reported_and_a_restarted_one_resumes_with_its_truth(capsys, setup, unique):
    """The replay is killed 2 s in and started again: the stream says so, decodes the second
    replay whole, and re-subscribes its key-press stream, so the keys after the restart have
    presses to be matched to and the second replay's end marker ends the stream."""
    source = f"src-{unique}"
    first = start_replay(setup["session"], unique, f"source_id={source}")
    second = []

    def kill_then_restart():
        kill_once_connected(first, after=2.0)
        time.sleep(1.0)
        second.append(start_replay(setup["session"], unique, f"source_id={source}", "speed=4"))

    killer = threading.Thread(target=kill_then_restart, daemon=True)
    killer.start()
    done, events, summary = stream(capsys, setup, unique, "markers=none", f"truth={unique}-keystrokes",
                                   "timeout=20")
    killer.join(30)
    out, err = second[0].communicate(timeout=60)
    assert second[0].returncode == 0, err
    offline = setup["offline"]
    lines = done.stderr.splitlines()
    lost = [line for line in lines if f"lost LSL stream '{unique}'" in line]
    back = [line for line in lines if f"LSL stream '{unique}' is back after " in line]
    truth_back = [line for line in lines if f"ground-truth stream '{unique}-keystrokes' is back too" in line]
    assert len(lost) == 1 and len(back) == 1 and len(truth_back) == 1, done.stderr
    assert lost[0].endswith("waiting up to 20 s for it to return")
    assert lines.index(lost[0]) < lines.index(truth_back[0]) < lines.index(back[0])
    # The second replay is decoded whole from its first sample, as the file replay, after the
    # keys of the first one's 2 s; its presses follow the first one's, and its end ended it.
    assert summary["ended"] == "end of the replay", done.stderr
    assert summary["text"].endswith(offline.prediction) and summary["truth"].endswith(offline.target)
    before = len(summary["truth"]) - len(offline.target)
    assert f"({before} key presses before)" in truth_back[0]
    assert summary["target_keys"] == before + len(offline.target)
    assert summary["seconds"] > 15.0 and summary["gaps"] == 0
    assert out.startswith(f"published 30000 samples (15.0 s of signal) and {len(offline.target)} key presses")


@pytest.mark.slow
def test_an_outlet_that_does_not_return_is_reported(capsys, setup, unique):
    """Killed and not restarted: the stream waits timeout= seconds for it, then stops and reports."""
    first = start_replay(setup["session"], unique)

    killer = threading.Thread(target=kill_once_connected, args=(first,), kwargs={"after": 1.0}, daemon=True)
    killer.start()
    done, _, summary = stream(capsys, setup, unique, "markers=none", f"truth={unique}-keystrokes", "timeout=2")
    killer.join(30)
    lines = done.stderr.splitlines()
    assert sum(f"lost LSL stream '{unique}'" in line for line in lines) == 1, done.stderr
    assert any(f"LSL stream '{unique}' did not return within 2 s: stopping" in line for line in lines)
    assert summary["ended"] == "stream lost" and 0.5 < summary["seconds"] < 15.0


def test_a_stall_is_reported_and_ctrl_c_stops_with_the_report(capsys, setup, unique):
    """An outlet of this process sends 1 s of signal, then nothing: the stream says it stalled;
    then Ctrl-C (SIGINT to this process) stops it, and it still decodes what came and reports."""
    import os
    import signal

    from emgtf.live.lsl import emg_info
    from tests.helpers import python_sigint

    outlet = pylsl.StreamOutlet(emg_info(unique, f"src-{unique}"))
    noise = np.random.default_rng(1).normal(0, 2.5, (2000, 32)).astype(np.float32)

    def feed_stall_interrupt():
        while not outlet.have_consumers():
            time.sleep(0.05)
        time.sleep(0.3)  # the stream's first pull is under way
        start = pylsl.local_clock()
        for first in range(0, 2000, 80):
            while pylsl.local_clock() < start + (first + 80) / 2000:
                time.sleep(0.005)
            outlet.push_chunk(noise[first : first + 80], start + (first + 80) / 2000)
        time.sleep(3.0)  # the stall
        os.kill(os.getpid(), signal.SIGINT)

    feeder = threading.Thread(target=feed_stall_interrupt, daemon=True)
    feeder.start()
    with python_sigint():
        done, events, summary = stream(capsys, setup, unique, "markers=none")
    feeder.join(10)
    stalled = [line for line in done.stderr.splitlines() if "for 2 s (stalled); waiting (Ctrl-C stops)" in line]
    assert len(stalled) == 1, done.stderr
    assert summary["ended"] == "stopped (Ctrl-C)" and summary["seconds"] == 1.0 and summary["chunks"] == 25
    assert summary["keys"] == len(events) > 0


def test_another_rate_is_resampled_on_request(capsys, setup, unique):
    """A 1 kHz outlet of this process: refused without resample=true (test_checks), decoded at
    2 kHz with it; the outlet then goes away and timeout=1 ends the stream."""
    info = pylsl.StreamInfo(unique, "EMG", 32, 1000.0, "float32", f"src-{unique}")
    outlet = pylsl.StreamOutlet(info)
    noise = np.random.default_rng(2).normal(0, 2.5, (1000, 32)).astype(np.float32)

    def feed_then_quit():
        nonlocal outlet
        while not outlet.have_consumers():
            time.sleep(0.05)
        time.sleep(0.3)
        start = pylsl.local_clock()
        for first in range(0, 1000, 40):
            outlet.push_chunk(noise[first : first + 40], [start + (first + i) / 1000 for i in range(40)])
            time.sleep(0.01)
        time.sleep(0.5)
        outlet = None  # the outlet goes away

    feeder = threading.Thread(target=feed_then_quit, daemon=True)
    feeder.start()
    # Without jsonl=true: the report on stdout, as for a file.
    done = run_command(capsys, "stream", "source=lsl", f"name={unique}", f"model={setup['ckpt']}", "markers=none",
                       "resample=true", "timeout=1")
    feeder.join(10)
    assert done.returncode == 0, done.stderr
    assert "(type EMG, 32 ch, 1000 Hz, float32" in done.stderr
    assert done.stdout.startswith("typed:") and "\ntext:" in done.stdout and "truth:" not in done.stdout
    assert "latency: no ground truth (truth=NAME" in done.stdout
    # 1 s at 1 kHz is 2000 samples at 2 kHz, less the filter's delay (10 ms) still held at the end:
    # 24 chunks of 80 and a last partial one.
    cpu = next(line for line in done.stdout.splitlines() if line.startswith("chunk CPU: "))
    assert "(25 chunks; 1.0 s of signal in " in cpu and "0 gaps; ended: stream lost)" in cpu
