"""``scripts/benchmark.py train`` / ``compare``: one JSON line that names its backend, with the
PyTorch reference beside emgtf, the per-layer table and the step's matmul FLOPs. Timings are
printed, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO

# A tiny TDS model on short windows: the whole benchmark in seconds.
TINY = ["steps=1", "warmup=1", "batch=2", "window=1600", "padding=[400,0]", "hp.mlp_features=[32]",
        "hp.block_channels=[4,4]", "hp.kernel_width=4", "layers=true"]
LAYERS = {"LogSpectrogram": 1, "SpecAugment": 1, "SpectrogramNorm": 1, "RotationInvariantMLP": 1,
          "TDSConvBlock": 2, "TDSFullyConnectedBlock": 2, "Dense": 1, "Activation": 1}


def tiny_matmul_gflops() -> float:
    """The tiny model's matrix products counted by hand, in multiply-adds per window: 2 bands x 3
    rolls of a 528 -> 32 layer on 122 frames; then 64 features = 4 channels x 16 positions: two
    conv blocks (4 taps, 4 -> 4 channels) to 119 and 116 frames, each followed by two 64 x 64
    dense layers; the 64 -> 99 classifier. 2 FLOPs each, batch 2, x 3 with the backward."""
    frames = 1 + (2000 - 64) // 16
    macs = 2 * 3 * 528 * 32 * frames
    for t in (frames - 3, frames - 6):
        macs += 16 * 4 * 4 * 4 * t + 2 * 64 * 64 * t
    macs += 64 * 99 * (frames - 6)
    return 3 * 2 * 2 * macs / 1e9


def run_benchmark(*args, env=None) -> dict:
    import os

    done = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), *args],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def load_bench_train():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_train", REPO / "scripts" / "bench_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_flop_count_is_the_hand_count_and_none_for_a_layer_it_does_not_know():
    import keras

    from emgtf import models

    bench = load_bench_train()
    tiny = models.build("tds_conv_ctc", mlp_features=[32], block_channels=[4, 4], kernel_width=4)
    assert bench.matmul_gflops_per_step(tiny, 2, 2000) == pytest.approx(tiny_matmul_gflops(), abs=1e-3)
    inputs = keras.Input((None, 2, 16))
    other = keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs))
    assert bench.matmul_gflops_per_step(other, 2, 100) is None


def test_a_bad_jit_value_is_one_line_before_anything_runs():
    from emgtf.errors import EmgtfError

    with pytest.raises(EmgtfError, match="jit must be true, false or auto, got 'maybe'"):
        load_bench_train().main(["jit=maybe"])


@pytest.mark.slow  # trains the TF and the PyTorch model, times every layer: ~30 s on 2 cores
def test_compare_prints_both_rates_the_layers_and_the_flops_under_tensorflow(capsys):
    bench = load_bench_train()
    assert bench.main([*TINY, "vs_torch=true"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (line["backend"], line["jit_compile"], line["onednn"]) == ("tensorflow", False, "1")
    assert line["windows_per_second"] > 0 and line["torch"]["windows_per_second"] > 0
    assert line["ratio_emgtf_over_torch"] == pytest.approx(
        line["windows_per_second"] / line["torch"]["windows_per_second"], rel=0.02, abs=0.01)
    assert {row["layer"]: row["count"] for row in line["layers"]} == LAYERS
    assert line["gflops_per_step"] == pytest.approx(tiny_matmul_gflops(), abs=1e-3)


@pytest.mark.slow  # a process under JAX: XLA compiles the step and each layer
def test_under_jax_the_step_is_compiled_and_xla_counts_at_least_the_matmul_flops():
    line = run_benchmark("train", *TINY, env={"KERAS_BACKEND": "jax"})
    assert (line["backend"], line["jit_compile"]) == ("jax", True)
    assert {row["layer"]: row["count"] for row in line["layers"]} == LAYERS
    # XLA counts everything (spectrogram, norms, CTC, elementwise ops): a little more.
    assert tiny_matmul_gflops() <= line["xla_gflops_per_step"] <= 1.25 * tiny_matmul_gflops()
