"""python -m emgtf.transcribe: whole-session decoding of a generated session with a checkpoint and
its SavedModel export, chunk stitching, the printed text, and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from omegaconf import OmegaConf

from emgtf import config as config_lib
from emgtf import models
from emgtf.cli import run
from emgtf.data import EMGSession
from emgtf.data.splits import write_split_file
from emgtf.inference.evaluation import evaluate_checkpoint, evaluate_model
from emgtf.export import export_checkpoint
from emgtf.models import EmissionRule
from emgtf.synth import generate_session
from emgtf.cli.transcribe import main
from emgtf.decoding import make_decoder
from emgtf.inference.runners import load_runner
from emgtf.inference.transcription import apply_keys, plan_chunks, session_log_probs, transcribe
from tests.helpers import REPO


TINY_TDS = dict(mlp_features=[16], block_channels=[4, 8], kernel_width=4)
TINY_RNN = dict(mlp_features=[16], hidden_size=8, num_layers=2)


def save_run(run_dir, family, root, split, **hp):
    """A run folder as emgtf.fit leaves it: best.keras and config.yaml naming the data."""
    run_dir.mkdir(parents=True)
    overrides = [f"model={family}", f"run_dir={run_dir}", f"data.root={root}", f"data.split={split}"]
    overrides += [f"model.{k}={json.dumps(v)}" for k, v in hp.items()]
    OmegaConf.save(config_lib.compose("fit", overrides), run_dir / "config.yaml")
    models.build(family, **hp).save(run_dir / "best.keras")
    return run_dir / "best.keras"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A generated 15 s session (shift, backspace, enter typed), a split naming it as the test
    set, tiny TDS and RNN checkpoints, and the TDS's SavedModel export."""
    root = tmp_path_factory.mktemp("data")
    info = generate_session(root, seed=3, minutes=0.25)
    split = write_split_file(root / "split.yaml", name="one", train=[], val=[], test=[info.session])
    runs = tmp_path_factory.mktemp("runs")
    tds = save_run(runs / "tds", "tds_conv_ctc", root, split, **TINY_TDS)
    rnn = save_run(runs / "rnn", "rnn", root, split, **TINY_RNN)
    export = runs / "tds_export"
    export_checkpoint(tds, export, verify=False)
    return {"session": info.path, "tds": tds, "rnn": rnn, "export": export, "root": root}


def cli(argv, capsys):
    code = run(main, "emgtf.transcribe", [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_text_and_cer_equal_evaluate(setup, capsys):
    report, _ = evaluate_checkpoint(setup["tds"], part="test")
    expected = report["sessions"][0]
    assert expected["target"]  # the generated session has keystrokes
    capsys.readouterr()
    for model in (setup["tds"], setup["export"]):
        transcript = transcribe(load_runner(model), setup["session"])
        assert transcript.prediction == expected["prediction"]
        assert transcript.target == expected["target"]
        assert transcript.rates["CER"] == expected["CER"]
        code, out, err = cli(["--model", model, setup["session"]], capsys)
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].startswith("typed: ") and any(line.startswith("text:  ") for line in lines)
        assert f"CER:   {expected['CER']:.2f} %" in out
        # The truth line is the typed text with its backspaces and shifts applied.
        assert "truth: " + apply_keys(expected["target"]).split("\n")[0] in out
        assert "1 chunk(s)" in err


def test_a_session_without_keystrokes_prints_the_text_but_no_cer(setup, tmp_path, capsys):
    # Sessions of conditions without a keylogger: there is nothing to score against.
    bare = tmp_path / "no_keys.hdf5"
    shutil.copyfile(setup["session"], bare)
    with h5py.File(bare, "a") as f:
        f["emg2qwerty"].attrs["keystrokes"] = "[]"
    code, out, err = cli(["--model", setup["tds"], bare], capsys)
    assert code == 0, err
    with_keys = cli(["--model", setup["tds"], setup["session"]], capsys)[1]
    assert out.splitlines()[0] == with_keys.splitlines()[0]  # the same decoded keys
    assert "truth:" not in out and "CER" not in out


def test_beam_search_with_lm_matches_evaluate(setup, small_lm):
    decoder = make_decoder(kind="beam", lm_path=str(small_lm))
    model = load_runner(setup["tds"])
    transcript = transcribe(model, setup["session"], decoder=decoder)
    from emgtf.inference.checkpoints import load_checkpoint

    report = evaluate_model(load_checkpoint(setup["tds"]), [setup["session"]], decoder, log=None)
    assert transcript.prediction == report["sessions"][0]["prediction"]
    assert transcript.rates["CER"] == report["overall"]["CER"]


def test_chunks_stitch_to_the_whole_session(setup):
    with EMGSession(setup["session"]) as session:
        for model in (setup["tds"], setup["export"]):
            tds = load_runner(model)
            whole, chunks = session_log_probs(tds, session, chunk_seconds=100)
            assert len(chunks) == 1
            # Unpadded convolutions see a bounded window: any chunking gives the same emissions.
            for chunk_seconds, context in ((2.0, 0.0), (1.3, 0.5)):
                stitched, chunks = session_log_probs(
                    tds, session, chunk_seconds=chunk_seconds, context_seconds=context
                )
                assert len(chunks) >= 7
                np.testing.assert_allclose(stitched, whole, atol=1e-5)
        # A bidirectional RNN sees the whole chunk: context on both sides makes it close.
        rnn = load_runner(setup["rnn"])
        whole, _ = session_log_probs(rnn, session, chunk_seconds=100)
        bare, _ = session_log_probs(rnn, session, chunk_seconds=2.0, context_seconds=0.0)
        with_context, _ = session_log_probs(rnn, session, chunk_seconds=2.0, context_seconds=2.0)
    assert np.abs(with_context - whole).max() < 1e-3
    assert np.array_equal(with_context.argmax(-1), whole.argmax(-1))
    assert np.abs(bare - whole).max() > 10 * np.abs(with_context - whole).max()


@pytest.mark.parametrize(
    "rule",
    [EmissionRule(64, 16, lost_frames=124), EmissionRule(64, 16), EmissionRule(64, 16, 0, 2),
     EmissionRule(32, 8, lost_frames=5, subsampling=4)],
    ids=["tds", "rnn", "transformer", "odd"],
)
def test_chunk_plan_covers_every_emission_once(rule):
    for num_samples in (rule.samples_for(1), 2077, 30_011, 120_000):
        for chunk, context in ((50, 0), (64, 17), (1000, 300)):
            chunks = plan_chunks(num_samples, rule, chunk_emissions=chunk, context_emissions=context)
            covered = 0
            for c in chunks:
                assert c.first == covered and c.start % rule.stride == 0
                assert 0 <= c.start < c.stop <= num_samples
                assert 0 <= c.keep_start < c.keep_stop <= rule.emissions(c.stop - c.start)
                # Emission e of the chunk is emission start / stride + e of the session.
                assert c.start // rule.stride + c.keep_start == c.first
                covered += c.keep_stop - c.keep_start
            assert covered == rule.emissions(num_samples)
            assert chunks[-1].stop == num_samples


def test_typed_keys_become_text():
    assert apply_keys("⇧hi thre⌫⌫ere⏎ok") == "Hi there\nok"
    assert apply_keys("⌫a⇧⌫b⇧1") == "b1"


def test_bad_models_and_sessions_are_one_line_errors(setup, small_lm, tmp_path, capsys):
    session = setup["session"]
    no_json = tmp_path / "no_json"
    shutil.copytree(setup["export"], no_json)
    (no_json / "export.json").unlink()
    bad_json = tmp_path / "bad_json"
    shutil.copytree(setup["export"], bad_json)
    (bad_json / "export.json").write_text("{not json")
    bad_graph = tmp_path / "bad_graph"
    shutil.copytree(setup["export"], bad_graph)
    (bad_graph / "saved_model.pb").write_bytes(b"\x00garbage" * 10)
    narrow = tmp_path / "narrow.hdf5"
    with h5py.File(narrow, "w") as f:  # 8 electrodes per band instead of 16
        dtype = np.dtype([("time", "f8"), ("emg_left", "f4", (8,)), ("emg_right", "f4", (8,))])
        group = f.create_group("emg2qwerty")
        group.create_dataset("timeseries", data=np.zeros(100, dtype))
        group.attrs["keystrokes"], group.attrs["prompts"] = "[]", "[]"
    short = tmp_path / "short.hdf5"
    with EMGSession(session) as s:
        rows = s.slice()[:100]  # the tiny TDS needs 64 + 6 x 16 = 160
    with h5py.File(short, "w") as f:
        f.create_group("emg2qwerty").create_dataset("timeseries", data=rows)
        f["emg2qwerty"].attrs["keystrokes"], f["emg2qwerty"].attrs["prompts"] = "[]", "[]"
    cases = [
        (["--model", no_json, session], "not an emgtf export (no export.json"),
        (["--model", bad_json, session], "export.json: not readable JSON"),
        (["--model", bad_graph, session], "cannot load the SavedModel"),
        (["--model", tmp_path / "nowhere", session], "no such file or folder"),
        (["--model", setup["export"], narrow], "field 'emg_left' has shape (8,), expected (16,)"),
        (["--model", setup["tds"], short], "100 samples is too short for tds_conv_ctc"),
        (["--model", setup["tds"], session, "--decoder", "greedy", "--lm", small_lm], "lm= needs decoder=beam"),
        ([f"model={setup['tds']}", f"session={session}", "chunk_seconds=0"], "chunk_seconds must be > 0"),
    ]
    for argv, message in cases:
        code, out, err = cli(argv, capsys)
        assert code == 2, (argv, err)
        assert err.startswith("emgtf.transcribe: error:") and message in err, err
        assert len(err.strip().splitlines()) == 1
    # And from a real process: one line on stderr, exit 2, no traceback.
    done = subprocess.run(
        [sys.executable, "-m", "emgtf.transcribe", "--model", str(setup["export"]), str(narrow)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"emgtf.transcribe: error: {narrow}: field 'emg_left' has shape (8,), expected (16,)"
    ]
