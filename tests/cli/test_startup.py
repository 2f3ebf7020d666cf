"""Quiet start-up: a command prints no TensorFlow / absl / CUDA-probe line unless the user asks
(``--verbose``, or TF_CPP_MIN_LOG_LEVEL 0 or 1), checked in real processes (only a process shows
what TensorFlow writes from C++); and the streaming path's TFLite interpreter is LiteRT's, with no
deprecation warning."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings

import keras
import pytest

from emgtf import models
from tests.helpers import make_tiny_split, tiny_tcn_overrides
from tests.reporting.tiny import subprocess_env

# The lines TensorFlow and absl write at import and at the CUDA probe: "WARNING: All log messages
# before absl::InitializeLog() ...", "I0000 00:00:... port.cc:153] oneDNN ...", "E0000 ...
# cuda_platform.cc ...", "To enable the following instructions: ...".
TENSORFLOW_LINE = re.compile(r"absl|^[IWEF]\d{4} |cudart|cuInit|cuda|oneDNN|tensorflow|To enable the following",
                             re.IGNORECASE | re.MULTILINE)


def command(*argv: str, **env) -> subprocess.CompletedProcess:
    """``python -m emgtf.<argv>`` in a fresh process, stdout and stderr in one text, and the
    environment a user has: no TF_CPP_MIN_LOG_LEVEL of the test session unless given."""
    return subprocess.run([sys.executable, "-m", *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=300, env=subprocess_env(**{"TF_CPP_MIN_LOG_LEVEL": None, **env}))


def test_fit_dry_run_prints_its_config_and_no_tensorflow_line():
    done = command("emgtf.fit", "--dry-run", "trainer.epochs=3")
    assert done.returncode == 0 and "epochs: 3" in done.stdout
    assert TENSORFLOW_LINE.findall(done.stdout) == [], done.stdout[:2000]


def test_models_prints_its_table_and_no_tensorflow_line():
    """``python -m emgtf.models`` imports the models package (Keras) before its __main__ runs."""
    done = command("emgtf.models", "samples=3000")
    assert done.returncode == 0 and done.stdout.splitlines()[0].startswith("family")
    assert TENSORFLOW_LINE.findall(done.stdout) == [], done.stdout[:2000]


@pytest.mark.slow  # four TensorFlow processes, 40-80 s on 2 loaded cores
def test_the_user_asks_for_tensorflows_lines_by_flag_or_log_level():
    # Asked for: TensorFlow's oneDNN line (TF_ENABLE_ONEDNN_OPTS=1 is the commands' default).
    verbose = command("emgtf.models", "samples=3000", "--verbose")
    assert verbose.returncode == 0 and "oneDNN custom operations are on" in verbose.stdout
    assert verbose.stdout.rstrip().splitlines()[-1].startswith("frames = ")
    asked = command("emgtf.models", "samples=3000", TF_CPP_MIN_LOG_LEVEL="0")
    assert asked.returncode == 0 and "oneDNN custom operations are on" in asked.stdout
    # Level 3 asks for less, and the console script is quiet too.
    done = command("emgtf", "models", "samples=3000", TF_CPP_MIN_LOG_LEVEL="3")
    assert done.returncode == 0 and TENSORFLOW_LINE.findall(done.stdout) == [], done.stdout[:2000]


@pytest.mark.slow  # a TensorFlow process, 10-25 s on 2 cores
def test_an_error_is_the_only_line_of_a_command_that_loads_tensorflow(tmp_path):
    done = command("emgtf.transcribe", f"model={tmp_path / 'none.keras'}", f"session={tmp_path / 'none.hdf5'}")
    assert done.returncode == 2
    assert done.stdout.strip().splitlines() == [f"emgtf.transcribe: error: {tmp_path / 'none.hdf5'}: no such file"]


# What TensorFlow's C++ writes during a healthy fit at TF_CPP_MIN_LOG_LEVEL=2 (ERROR lines):
# "E0000 ... node_def_util.cc:682] NodeDef mentions attribute use_unbounded_threadpool ..." and
# "E0000 ... util.cc:131] oneDNN supports DT_BOOL only on platforms with AVX-512 ...".
RUN_TIME_LINE = re.compile(r"^[IWE]\d{4} |node_def_util|use_unbounded_threadpool|DT_BOOL", re.MULTILINE)


def test_a_quiet_command_runs_tensorflow_at_level_3_unless_the_user_chose(monkeypatch):
    from emgtf import startup

    monkeypatch.setattr(startup._QuietTensorFlowFinder, "install", classmethod(lambda cls: None))
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1"))  # restored after
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    startup.configure_process(tensorflow=False)
    assert startup.QUIET_LOG_LEVEL == "3" and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # the user's level wins
    startup.configure_process(tensorflow=False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"


@pytest.mark.slow  # a tiny fit in a TensorFlow process, 20-40 s on 2 cores
def test_a_fit_prints_no_tensorflow_line_while_it_runs(tmp_path):
    """Not only start-up: tf.data and oneDNN write ERROR lines from C++ during a healthy run."""
    data = make_tiny_split(tmp_path / "data")
    done = subprocess.run([sys.executable, "-m", "emgtf.fit", *tiny_tcn_overrides(data, tmp_path / "run")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env=subprocess_env(TF_CPP_MIN_LOG_LEVEL=None))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "emgtf.fit: tcn" in done.stdout and "report: " in done.stdout
    assert RUN_TIME_LINE.findall(done.stdout + done.stderr) == [], done.stderr[:2000]


def test_the_tflite_streaming_path_runs_on_litert_without_a_deprecation_warning(tmp_path, capsys):
    pytest.importorskip("ai_edge_litert")
    from emgtf.cli import run
    from emgtf.cli.stream import main
    from emgtf.export import export_model
    from emgtf.synth import generate_session

    keras.utils.set_random_seed(2)
    model = models.build("tds_conv_ctc", mlp_features=[16], block_channels=[4, 8], kernel_width=4)
    export_model(model, tmp_path / "tflite", "tflite", tflite_int8="none", verify=False)
    session = generate_session(tmp_path, seed=2, minutes=0.05).path
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = run(main, "emgtf.stream", [f"model={tmp_path / 'tflite'}", f"session={session}"])
    out, err = capsys.readouterr()
    assert code == 0 and "TFLite step model.tflite" in err and "CER" in out
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "deprecat" in m.lower() or "tf.lite" in m], messages
    assert "deprecated" not in err.lower()
