"""python -m emgtf.export: SavedModel / .keras / ONNX exports of real checkpoints, checked against
the Keras model, the SavedModel from a process that imports TensorFlow only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from omegaconf import OmegaConf

from emgtf import config as config_lib
from emgtf import models
from emgtf.charset import charset
from emgtf.cli import run
from emgtf.cli.export import main
from emgtf.export import export_checkpoint
from emgtf.export.verify import probe_signal
from emgtf.inference.checkpoints import load_checkpoint
from emgtf.models import EmissionRule
from tests.helpers import NO_EMGTF

TINY = {
    "tds_conv_ctc": dict(mlp_features=[16], block_channels=[4, 8], kernel_width=4),
    "rnn": dict(mlp_features=[16], hidden_size=8, num_layers=2),
    "tcn": dict(mlp_features=[16], hidden_size=16, num_layers=3),
    "tds_rnn": dict(mlp_features=[16], block_channels=[4], kernel_width=5, cell="gru", hidden_size=8),
    "conv_resnet": dict(mlp_features=[16], channels=16, num_blocks=2, kernel_size=3, gru_size=8),
    "transformer": dict(
        mlp_features=[16], d_model=16, num_heads=2, num_layers=2, ff_size=32, conv_kernel=3
    ),
}


def save_run(run_dir, family, **hp):
    """A run folder as emgtf.fit leaves it: best.keras and the resolved config.yaml."""
    run_dir.mkdir(parents=True)
    overrides = [f"model={family}", "seed=3", f"run_dir={run_dir}"]
    overrides += [f"model.{k}={json.dumps(v)}" for k, v in hp.items()]
    cfg = config_lib.compose("fit", overrides)
    OmegaConf.save(cfg, run_dir / "config.yaml")
    model = models.build(family, **hp)
    model.save(run_dir / "best.keras")
    return run_dir / "best.keras", model


def cli(argv, capsys):
    code = run(main, "emgtf.export", argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {family: save_run(root / family, family, **TINY[family]) for family in ("tds_conv_ctc", "rnn")}


@pytest.fixture(scope="module")
def saved_models(runs, tmp_path_factory):
    """SavedModel exports of the tiny baseline and RNN, through the command line."""
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for family, (checkpoint, _) in runs.items():
        out[family] = root / family
        assert run(main, "emgtf.export", [f"checkpoint={checkpoint}", f"out={out[family]}"]) == 0
    return out


def test_saved_model_needs_tensorflow_only_and_reproduces_keras(runs, saved_models, tmp_path):
    emg, lengths = probe_signal(EmissionRule(64, 16))
    np.save(tmp_path / "emg.npy", emg)
    np.save(tmp_path / "lengths.npy", lengths)
    for family, (_, model) in runs.items():
        np.save(tmp_path / f"{family}.npy", model.predict_on_batch(emg))
        expected = models.emission_lengths(model, lengths)
        np.save(tmp_path / f"{family}.lengths.npy", np.asarray(expected, np.int32))
    script = NO_EMGTF + textwrap.dedent(
        """
        import json
        if sys.argv[1] == "probe":
            import emgtf
        import numpy as np
        import tensorflow as tf
        emg = np.load("emg.npy"); lengths = np.load("lengths.npy")
        report = {}
        for family, path in json.loads(sys.argv[1]).items():
            loaded = tf.saved_model.load(path)
            serve = loaded.signatures["serving_default"]
            inputs = sorted(serve.structured_input_signature[1])
            full = serve(emg=tf.constant(emg))
            padded = loaded.signatures["with_lengths"](emg=tf.constant(emg),
                                                       emg_lengths=tf.constant(lengths))
            expected = np.load(family + ".npy")
            report[family] = {
                "inputs": inputs,
                "dtypes": [full["log_probs"].dtype.name, full["emission_lengths"].dtype.name],
                "error": float(np.abs(full["log_probs"].numpy() - expected).max()),
                "padded_error": float(np.abs(padded["log_probs"].numpy() - expected).max()),
                "full_lengths": full["emission_lengths"].numpy().tolist(),
                "lengths": padded["emission_lengths"].numpy().tolist(),
                "expected_lengths": np.load(family + ".lengths.npy").tolist(),
                "frames": int(full["log_probs"].shape[1]),
            }
        report["emgtf_imported"] = any(m.split(".")[0] == "emgtf" for m in sys.modules)
        print(json.dumps(report))
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    probe = subprocess.run([sys.executable, "-c", script, "probe"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'emgtf'" in probe.stderr
    paths = json.dumps({family: str(path) for family, path in saved_models.items()})
    done = subprocess.run([sys.executable, "-c", script, paths], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report.pop("emgtf_imported") is False
    for family, r in report.items():
        assert r["inputs"] == ["emg"]
        assert r["dtypes"] == ["float32", "int32"]
        assert r["error"] <= 1e-5, (family, r["error"])
        assert r["padded_error"] <= 1e-5, (family, r["padded_error"])
        assert r["full_lengths"] == [r["frames"]] * 2
        assert r["lengths"] == r["expected_lengths"]
        assert r["lengths"][1] < r["lengths"][0]


def test_export_json_lets_a_consumer_decode(runs, saved_models):
    doc = json.loads((saved_models["tds_conv_ctc"] / "export.json").read_text(encoding="utf-8"))
    cs = charset()
    assert doc["charset"]["keys"] == list(cs.chars) and len(doc["charset"]["keys"]) == 98
    assert doc["charset"]["blank"] == 98
    assert doc["sample_rate"] == 2000 and doc["frame_rate_hz"] == 125.0
    # Tiny TDS: kernel 4 drops 3 frames in each of 2 blocks.
    assert doc["emission"]["emissions"].startswith("frames - 6")
    assert doc["emission"]["frames"] == "max(0, 1 + (samples - 64) // 16)"
    assert doc["emission"]["lost_frames"] == 6 and doc["emission"]["stride_samples"] == 16
    assert doc["family"] == "tds_conv_ctc" and doc["format"] == "saved_model"
    assert doc["training_config"]["model"]["block_channels"] == [4, 8]
    assert doc["verification"]["max_abs_log_prob_difference"] <= 1e-5
    assert set(doc["signatures"]) == {"serving_default", "with_lengths"}
    rnn = json.loads((saved_models["rnn"] / "export.json").read_text(encoding="utf-8"))
    assert rnn["emission"]["emissions"].startswith("frames ") and rnn["emission"]["lost_frames"] == 0


def test_keras_format_saves_the_model_and_the_json(runs, tmp_path, capsys):
    checkpoint, model = runs["rnn"]
    code, out, err = cli([f"checkpoint={checkpoint}", "format=keras", f"out={tmp_path / 'k'}"], capsys)
    assert code == 0, err
    assert "rnn" in out and "[keras]" in out
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["export.json", "model.keras"]
    emg, _ = probe_signal(EmissionRule(64, 16))
    reloaded = load_checkpoint(tmp_path / "k" / "model.keras")
    np.testing.assert_array_equal(reloaded.predict_on_batch(emg), model.predict_on_batch(emg))


@pytest.mark.parametrize("family", ["tds_conv_ctc", "rnn"])
def test_onnx_export_runs_in_onnxruntime(runs, tmp_path, family):
    onnxruntime = pytest.importorskip("onnxruntime")
    checkpoint, model = runs[family]
    doc = export_checkpoint(checkpoint, tmp_path / "onnx", "onnx")
    assert doc["verification"]["max_abs_log_prob_difference"] <= 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    assert [i.name for i in session.get_inputs()] == ["emg"]
    emg = np.random.default_rng(5).normal(0, 2.5, (1, 3333, 2, 16)).astype(np.float32)
    log_probs, emitted = session.run(["log_probs", "emission_lengths"], {"emg": emg})
    np.testing.assert_allclose(log_probs, model.predict_on_batch(emg), atol=1e-4)
    assert emitted.tolist() == [models.emission_lengths(model, 3333)]


def test_onnx_conversion_failure_is_one_line_naming_family_and_ops(runs, tmp_path, capsys):
    pytest.importorskip("tf2onnx")
    checkpoint, _ = runs["tds_conv_ctc"]
    # Opset 9 predates ONNX's Slice with tensor inputs, which the TDS blocks' cropping needs.
    argv = [f"checkpoint={checkpoint}", "format=onnx", "onnx_opset=9", f"out={tmp_path / 'o'}"]
    code, out, err = cli(argv, capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "emgtf.export: error: format=onnx cannot export model 'tds_conv_ctc': tf2onnx "
        f"{__import__('tf2onnx').__version__} at opset 9 cannot convert the TensorFlow ops StridedSlice "
        "(try a higher onnx_opset)"
    ]
    assert list(tmp_path.iterdir()) == []


def test_emission_rule_is_read_off_every_family():
    samples = np.arange(0, 6000, 7)
    for family, hp in TINY.items():
        model = models.build(family, **hp)
        rule = EmissionRule.from_model(model)
        assert rule.describe() == models.emission_rule(family, **hp)
        np.testing.assert_array_equal(rule.emissions(samples), models.emission_lengths(model, samples))
        for emitted in (1, 2, 37):
            fewest = rule.samples_for(emitted)
            assert rule.emissions(fewest) == emitted and rule.emissions(fewest - 1) == emitted - 1
    baseline = EmissionRule.from_model(models.build("tds_conv_ctc"))
    assert (baseline.lost_frames, baseline.describe(), baseline.center_offset_frames) == (
        124, "frames - 124", 62.0)


def test_refuses_to_overwrite_and_reports_bad_arguments_in_one_line(runs, tmp_path, capsys):
    checkpoint, _ = runs["tds_conv_ctc"]
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    cases = [
        ([f"checkpoint={checkpoint}", f"out={full}"], "is not an empty folder"),
        ([f"checkpoint={checkpoint}", f"out={tmp_path / 'x'}", "format=pdf"], "format must be one of"),
        ([f"checkpoint={tmp_path / 'none.keras'}", f"out={tmp_path / 'y'}"], "does not exist"),
        ([f"checkpoint={checkpoint}"], "'out' must be set"),
        ([f"checkpoint={checkpoint}", f"out={tmp_path / 'z'}", "colour=red"], "unknown config key"),
    ]
    for argv, message in cases:
        code, out, err = cli(argv, capsys)
        assert code == 2
        assert err.startswith("emgtf.export: error:") and message in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    # Nothing half-written beside the refused folders.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


@pytest.mark.slow
def test_default_baseline_exports_and_matches(tmp_path):
    checkpoint, model = save_run(tmp_path / "run", "tds_conv_ctc")
    doc = export_checkpoint(checkpoint, tmp_path / "sm")
    assert doc["parameters"] >= 5_293_315 and doc["emission"]["lost_frames"] == 124
    assert doc["verification"]["max_abs_log_prob_difference"] <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("family", ["tcn", "tds_rnn", "conv_resnet", "transformer"])
@pytest.mark.parametrize("fmt", ["saved_model", "onnx"])
def test_other_families_export(tmp_path, family, fmt):
    checkpoint, _ = save_run(tmp_path / "run", family, **TINY[family])
    doc = export_checkpoint(checkpoint, tmp_path / "out", fmt)
    assert doc["verification"]["max_abs_log_prob_difference"] <= (1e-5 if fmt == "saved_model" else 1e-4)
