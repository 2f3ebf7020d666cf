"""The streaming step of an export (SavedModel signature stream_step, TFLite float32 and int8): run
in a process that imports TensorFlow and numpy only, against the Keras model's whole-session
emissions; refusals of models and options that have no step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from emgtf import models
from emgtf.cli import run
from emgtf.cli.export import main
from emgtf.data import EMGSession
from emgtf.errors import EmgtfError
from emgtf.export.stream_step import step_layout
from emgtf.inference.runners import keras_runner, load_runner
from emgtf.inference.streaming import StreamingDecoder
from emgtf.synth import generate_session
from tests.export.test_export import TINY, save_run
from tests.helpers import NO_EMGTF

# Stated bounds of the streamed step against the Keras model: float32 re-association, and int8
# post-training quantisation of the untrained tiny TDS (export.json records what it costs a
# given checkpoint), largest and mean |log-prob| difference: int8 weights, and int8 activations
# of the fully connected layers too.
FLOAT_BOUND = 1e-4
INT8_BOUNDS = {"weights": (0.1, 0.01), "static": (0.5, 0.05)}
# Ops a static int8 model must keep float32: the state's split and join, the convolutions,
# LayerNorms' mean and log_softmax (int8 there costs the trained streaming preset CER points).
FLOAT_OPS = {"SPLIT_V", "CONCATENATION", "CONV_2D", "MEAN", "SQUARED_DIFFERENCE", "RSQRT", "LOG_SOFTMAX"}


def test_the_step_streams_the_whole_session_emissions():
    """The step function itself (what both exports trace), in process, for several chunk sizes."""
    import tensorflow as tf

    from emgtf.export.formats import step_function
    from emgtf.inference.runners import run_step_stream
    from tests.helpers import random_emg

    keras.utils.set_random_seed(6)
    model = models.build("tds_conv_ctc", **TINY["tds_conv_ctc"])
    emg = random_emg(1, 3001, seed=6)[0]
    offline = keras_runner(model).log_probs(emg)
    for chunk in (16, 80, 2000):
        layout = step_layout(model, chunk)
        assert layout.frames_per_step == chunk // 16
        function, _ = step_function(model, layout)

        def step(state, chunk_emg):
            out = function(tf.constant(state), tf.constant(chunk_emg))
            return out["next_state"].numpy(), out["log_probs"].numpy()

        np.testing.assert_allclose(run_step_stream(step, layout, emg, len(offline)), offline, atol=1e-5)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A tiny TDS run exported as a SavedModel with the step and as TFLite (int8 weights by
    default, and static int8), through the command line; a generated 9 s session."""
    root = tmp_path_factory.mktemp("step")
    keras.utils.set_random_seed(5)
    checkpoint, model = save_run(root / "run", "tds_conv_ctc", **TINY["tds_conv_ctc"])
    for name, extra in (("sm", ["streaming=true"]), ("tfl", ["format=tflite"]),
                        ("static", ["format=tflite", "tflite_int8=static", "verify=false"])):
        assert run(main, "emgtf.export", [f"checkpoint={checkpoint}", f"out={root / name}", *extra]) == 0
    info = generate_session(root, seed=4, minutes=0.15)
    with EMGSession(info.path) as session:
        emg = session.read()
    return {"root": root, "model": model, "checkpoint": checkpoint, "emg": emg}


CONSUMER = NO_EMGTF + textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter  # TFLite's interpreter since TF 2.21

    sm, tfl, static = sys.argv[1:4]
    emg = np.load("emg.npy")
    step_doc = json.load(open(tfl + "/export.json"))["streaming"]
    size, warmup = step_doc["chunk_samples"], step_doc["warmup_emissions"]
    emissions = int(sys.argv[4])

    def stream(step):
        # As export.json says: zero state, fixed chunks (the last zero-padded), warm-up dropped.
        padded = np.concatenate([emg, np.zeros((-len(emg) % size, 2, 16), np.float32)])
        state, rows = np.zeros(step_doc["state_size"], np.float32), []
        for start in range(0, len(padded), size):
            state, log_probs = step(state, padded[start:start + size])
            rows.append(log_probs)
        return np.concatenate(rows)[warmup:warmup + emissions]

    def tflite(path):
        runner = Interpreter(model_path=path).get_signature_runner("stream_step")
        return lambda s, c: (lambda o: (o["next_state"], o["log_probs"]))(runner(state=s, chunk=c))

    signature = tf.saved_model.load(sm).signatures["stream_step"]
    def saved(s, c):
        out = signature(state=tf.constant(s), chunk=tf.constant(c))
        return out["next_state"].numpy(), out["log_probs"].numpy()

    for name, step in (("saved_model", saved), ("tflite", tflite(tfl + "/model.tflite")),
                       ("weights", tflite(tfl + "/model_int8.tflite")),
                       ("static", tflite(static + "/model_int8.tflite"))):
        np.save(name + ".npy", stream(step))
    print(json.dumps({"emgtf_imported": any(m.split(".")[0] == "emgtf" for m in sys.modules)}))
    """
)


@pytest.mark.slow  # about 2 minutes on 2 cores: three exports, int8 calibration, a TensorFlow process
def test_step_reproduces_keras_in_a_process_without_emgtf(exports, tmp_path):
    model, emg = exports["model"], exports["emg"]
    offline = keras_runner(model).log_probs(emg)
    # The StreamingDecoder's emissions of the same stream (the reference the step must match).
    streamer = StreamingDecoder.from_model(model)
    parts = [streamer.push(emg[i : i + 80]).log_probs for i in range(0, len(emg), 80)]
    streamed = np.concatenate([*parts, streamer.finish().log_probs])
    np.testing.assert_allclose(streamed, offline, atol=1e-5)
    np.save(tmp_path / "emg.npy", emg)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    argv = [sys.executable, "-c", CONSUMER, *(str(exports["root"] / name) for name in ("sm", "tfl", "static")),
            str(len(offline))]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"emgtf_imported": False}
    for name in ("saved_model", "tflite"):
        got = np.load(tmp_path / f"{name}.npy")
        assert got.shape == streamed.shape
        np.testing.assert_allclose(got, streamed, atol=FLOAT_BOUND, err_msg=name)
    for mode, (largest, mean) in INT8_BOUNDS.items():
        int8 = np.load(tmp_path / f"{mode}.npy")
        assert int8.shape == streamed.shape and np.isfinite(int8).all()
        difference = np.abs(int8 - streamed)
        assert difference.max() <= largest and difference.mean() <= mean, (mode, difference.max(), difference.mean())
        assert difference.max() > 1e-4  # it is quantised, not the float model again


@pytest.mark.slow
def test_export_json_describes_the_step_and_the_int8_cost(exports):
    root, model = exports["root"], exports["model"]
    layout = step_layout(model, 80)
    sm = json.loads((root / "sm" / "export.json").read_text(encoding="utf-8"))
    assert sm["signatures"]["stream_step"] == ["state", "chunk"] and "serving_default" in sm["signatures"]
    assert sm["streaming"] == layout.to_json()
    # Tiny TDS, kernel 4 in 2 blocks: 48 overlap samples (3 hops) + 2 x 3 frames of 32 features.
    assert sm["streaming"]["warmup_emissions"] == 3 + 6
    assert sm["streaming"]["state_size"] == 48 * 32 + 2 * 3 * 32
    assert sm["verification"]["stream_step_max_abs_log_prob_difference"] <= 1e-5
    tfl = json.loads((root / "tfl" / "export.json").read_text(encoding="utf-8"))
    assert tfl["format"] == "tflite" and tfl["signatures"] == {"stream_step": ["state", "chunk"]}
    assert sorted(p.name for p in (root / "tfl").iterdir()) == ["export.json", "model.tflite", "model_int8.tflite"]
    for name, mode in (("tfl", "weights"), ("static", "static")):
        doc = json.loads((root / name / "export.json").read_text(encoding="utf-8"))["tflite"]
        assert doc["int8"]["mode"] == mode
        assert doc["bytes"] == {kind: (root / name / file).stat().st_size for kind, file in doc["files"].items()}
        assert doc["bytes"]["int8"] < doc["bytes"]["float32"] / 2
        cost = doc["int8_accuracy_cost"]
        assert cost["float_max_abs_log_prob_difference"] <= FLOAT_BOUND
        assert 0 < cost["int8_max_abs_log_prob_difference"] <= INT8_BOUNDS[mode][0]
        assert 0 < cost["int8_mean_abs_log_prob_difference"] <= INT8_BOUNDS[mode][1]
        assert set(cost["greedy_cer"]) == {"keras", "float32", "int8"}
        assert cost["greedy_cer_difference_int8"] == cost["greedy_cer"]["int8"] - cost["greedy_cer"]["keras"]
        assert ("calibration" in cost) == (mode == "static")
        assert "FULLY_CONNECTED" in doc["int8"]["int8_inputs"]
    weights, static = (json.loads((root / n / "export.json").read_text(encoding="utf-8"))["tflite"]["int8"]
                       for n in ("tfl", "static"))
    assert weights["int8_outputs"] == []  # weights only (TFLite leaves tensors under 1,024 values float)
    assert "FULLY_CONNECTED" in static["int8_outputs"] and not FLOAT_OPS & set(static["int8_outputs"])
    assert tfl["verification"]["max_abs_log_prob_difference"] <= FLOAT_BOUND
    # emgtf's own runner of the export (transcribe, stream) runs the float step.
    np.testing.assert_allclose(load_runner(root / "tfl").log_probs(exports["emg"][:5000]),
                               keras_runner(model).log_probs(exports["emg"][:5000]), atol=FLOAT_BOUND)


def test_models_and_options_without_a_step_are_one_line_errors(tmp_path, capsys):
    rnn_checkpoint, _ = save_run(tmp_path / "rnn", "rnn", **TINY["rnn"])
    checkpoint, _ = save_run(tmp_path / "tds", "tds_conv_ctc", **TINY["tds_conv_ctc"])
    # SplashNet streams through the step in Python, but its rows per step vary (the rolling norm).
    splash_checkpoint, _ = save_run(tmp_path / "splash", "splashnet", **TINY["tds_conv_ctc"])
    cases = [
        ([f"checkpoint={rnn_checkpoint}", "streaming=true"],
         "model 'rnn' has no streaming step: layer 'rnn_1' (Bidirectional) is not a per-frame layer"),
        ([f"checkpoint={rnn_checkpoint}", "format=tflite"], "only the TDS baseline (tds_conv_ctc) and SplashNet"),
        ([f"checkpoint={splash_checkpoint}", "format=tflite"],
         "model 'splashnet' has no fixed-shape streaming step: its RollingTimeNorm holds back the "
         "first 125 frames"),
        ([f"checkpoint={checkpoint}", "streaming=true", "stream_chunk_samples=50"],
         "stream_chunk_samples must be a positive multiple of the hop length (16 samples), got 50"),
        ([f"checkpoint={checkpoint}", "streaming=true", "format=onnx"], "streaming=true needs format=saved_model"),
        ([f"checkpoint={checkpoint}", "streaming=yes"], "streaming must be true or false"),
        ([f"checkpoint={checkpoint}", "format=tflite", "tflite_int8=true"],
         "tflite_int8 must be one of weights, static or none, got True"),
    ]
    for argv, message in cases:
        code = run(main, "emgtf.export", [*argv, f"out={tmp_path / 'out'}"])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "out").exists()
    # Every family but the TDS baseline is refused by the layout itself.
    for family in ("tcn", "conv_resnet", "transformer", "tds_rnn"):
        with pytest.raises(EmgtfError, match="has no streaming step"):
            step_layout(models.build(family, **TINY[family]))
