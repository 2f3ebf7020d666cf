"""Meta's checkpoints (.ckpt, .safetensors) as emgtf models, against an independent PyTorch model.

The PyTorch TDS-Conv CTC in tests/reference/tds_torch.py writes checkpoints in both published
formats; the converted Keras model must give its log-probabilities on the same raw EMG.
"""

from __future__ import annotations

import sys
import zipfile

import numpy as np
import pytest
from keras import ops

from emgtf.models.layers import LogSpectrogram
from emgtf.models import emission_lengths
from emgtf.converters import from_emg2qwerty
from emgtf.converters import convert, read_checkpoint
from emgtf.inference.checkpoints import load_checkpoint
from tests.converters.common import log_probs, one_line_error
from tests.helpers import run_command

TOLERANCE = 1e-4  # max abs log-probability difference

# The default (Meta's) architecture on ~2 s of EMG, and a non-default one that changes every
# shape the hyperparameters govern.
ARCHITECTURES = {
    "default": ({}, 4000),
    "small": (dict(mlp_features=[64], block_channels=[8, 8], kernel_width=8), 3000),
}


def raw_emg(samples: int, seed: int = 1, batch: int = 2) -> np.ndarray:
    # White noise of std 2.5 has the spectrogram statistics of real emg2qwerty recordings.
    return np.random.default_rng(seed).normal(0.0, 2.5, (batch, samples, 2, 16)).astype("float32")


@pytest.fixture(scope="module")
def tds_torch():
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from tests.reference import tds_torch

    return tds_torch


@pytest.fixture(scope="module")
def reference(tds_torch, tmp_path_factory):
    """Per architecture: the PyTorch model (random weights and BatchNorm statistics), its
    .ckpt and .safetensors files, a raw EMG batch and the PyTorch log-probabilities on it."""
    import torch

    root = tmp_path_factory.mktemp("checkpoints")
    out = {}
    for seed, (name, (hp, samples)) in enumerate(ARCHITECTURES.items()):
        torch.manual_seed(seed)
        model = tds_torch.make_tds_torch(**hp)
        tds_torch.randomize_batch_norm(model, seed=seed)
        model.eval()
        emg = raw_emg(samples, seed=seed)
        with torch.no_grad():
            expected = model(torch.from_numpy(emg)).numpy()
        tds_torch.save_lightning_ckpt(model, root / f"{name}.ckpt", hp)
        tds_torch.save_safetensors(model, root / f"{name}.safetensors")
        out[name] = {
            "model": model,
            "hp": hp,
            "emg": emg,
            "expected": expected,
            "ckpt": root / f"{name}.ckpt",
            "safetensors": root / f"{name}.safetensors",
        }
    return out


def test_reference_model_has_the_published_keys_shapes_and_size(tds_torch):
    state = tds_torch.make_tds_torch().state_dict()
    assert len(state) == 51
    trainable = [v for k, v in state.items() if "running" not in k and "num_batches" not in k]
    assert sum(v.numel() for v in trainable) == 5_293_315
    assert tuple(state["model.0.batch_norm.running_var"].shape) == (32,)
    assert tuple(state["model.1.mlps.1.mlp.0.weight"].shape) == (384, 528)
    assert tuple(state["model.3.tds_conv_blocks.6.conv2d.weight"].shape) == (24, 24, 1, 32)
    assert tuple(state["model.3.tds_conv_blocks.7.fc_block.2.weight"].shape) == (768, 768)
    assert tuple(state["model.4.weight"].shape) == (99, 768)
    assert not [k for k in state if k.startswith(("model.2.", "model.5.", "spectrogram"))]


def test_reference_spectrogram_matches_emgtfs(tds_torch):
    import torch

    emg = raw_emg(1000)
    expected = tds_torch.LogSpectrogram()(torch.from_numpy(emg)).numpy()
    found = ops.convert_to_numpy(LogSpectrogram()(emg))
    assert found.shape == expected.shape == (2, 59, 2, 16, 33)
    # The log magnifies float32 FFT rounding in bins far below the frame's energy: relative.
    np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fmt", ["ckpt", "safetensors"])
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_import_reproduces_the_pytorch_log_probabilities(reference, name, fmt):
    ref = reference[name]
    model = from_emg2qwerty(ref[fmt])
    assert model.name == "tds_conv_ctc"
    hp = {"mlp_features": [384], "block_channels": [24] * 4, "kernel_width": 32, **ref["hp"]}
    assert read_checkpoint(ref[fmt])[1] == hp
    assert len([layer for layer in model.layers if layer.name.startswith("tds_conv_")]) == len(
        hp["block_channels"]
    )
    found = log_probs(model, ref["emg"])
    assert found.shape == ref["expected"].shape
    assert found.shape[1] == emission_lengths(model, ref["emg"].shape[1])
    assert np.abs(found - ref["expected"]).max() <= TOLERANCE
    # The running statistics are PyTorch's, as inference uses them.
    bn = ref["model"].state_dict()
    norm = model.get_layer("spectrogram_norm")
    np.testing.assert_array_equal(ops.convert_to_numpy(norm.moving_variance),
                                  bn["model.0.batch_norm.running_var"].numpy())


def test_converted_file_reloads_through_load_checkpoint(reference, tmp_path):
    ref = reference["default"]
    out = tmp_path / "meta" / "generic.keras"
    converted = convert(ref["ckpt"], out)
    loaded = load_checkpoint(out, "tds_conv_ctc")
    found = log_probs(loaded, ref["emg"])
    np.testing.assert_array_equal(found, log_probs(converted, ref["emg"]))
    assert np.abs(found - ref["expected"]).max() <= TOLERANCE
    one_line_error(lambda: convert(ref["safetensors"], out), out, "never written over")
    one_line_error(lambda: convert(ref["ckpt"], tmp_path / "x.h5"), "x.h5", ".keras")
    assert sorted(p.name for p in out.parent.iterdir()) == ["generic.keras"]


def test_ckpt_hyperparameters_are_the_checkpoints_own(reference, tds_torch, tmp_path):
    # The small model's tensors under other hyperparameters: the stored ones are believed, so
    # the first tensor they disagree with is reported.
    small = reference["small"]
    bad = tmp_path / "mislabelled.ckpt"
    tds_torch.save_lightning_ckpt(small["model"], bad, {**small["hp"], "mlp_features": [384]})
    one_line_error(lambda: from_emg2qwerty(bad), bad, "'model.1.mlps.0.mlp.0.weight'",
                   "(64, 528)", "(384, 528)")
    bad = tmp_path / "defaults.ckpt"
    tds_torch.save_lightning_ckpt(small["model"], bad, {})
    # The file's first tensor that does not fit is named, in the file's own order.
    one_line_error(lambda: from_emg2qwerty(bad), bad, "'model.1.mlps.0.mlp.0.weight'",
                   "(64, 528)", "expected (384, 528)", "hyper_parameters say",
                   "block_channels=[24, 24, 24, 24]")


def test_cli_converts_and_reports_bad_files_in_one_line(reference, tmp_path, capsys):
    out = tmp_path / "small.keras"
    done = run_command(capsys, "convert", reference["small"]["ckpt"], out)
    assert done.returncode == 0, done.stderr[-2000:]
    parameters = sum(v.numel() for v in reference["small"]["model"].parameters())
    assert done.stdout.strip().splitlines() == [
        f"emgtf.convert: tds_conv_ctc, {parameters:,} trainable parameters -> {out}"
    ]
    loaded = load_checkpoint(out)
    assert np.abs(log_probs(loaded, reference["small"]["emg"])
                  - reference["small"]["expected"]).max() <= TOLERANCE

    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    failed = run_command(capsys, "convert", text, tmp_path / "notes.keras")
    assert failed.returncode == 2
    assert failed.stdout == ""
    assert failed.stderr.strip().splitlines() == [
        f"emgtf.convert: error: {text}: not a PyTorch Lightning .ckpt or a .safetensors checkpoint"
    ]
    assert not (tmp_path / "notes.keras").exists()


@pytest.mark.parametrize("suffix", [".ckpt", ".safetensors", ".keras"])
def test_a_file_that_is_no_checkpoint_is_refused(tmp_path, suffix):
    path = tmp_path / f"readme{suffix}"
    path.write_text("a text file\n")
    one_line_error(lambda: from_emg2qwerty(path), path, "not a PyTorch Lightning .ckpt")
    one_line_error(lambda: from_emg2qwerty(tmp_path / "missing.ckpt"), "missing.ckpt",
                   "does not exist")


def test_ckpt_without_torch_says_how_to_install_it(monkeypatch, tmp_path):
    path = tmp_path / "generic.ckpt"
    with zipfile.ZipFile(path, "w") as archive:  # torch.save writes a zip archive
        archive.writestr("generic/data.pkl", b"")
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    one_line_error(lambda: from_emg2qwerty(path), path, 'pip install "emgtf[torch]"')


def test_safetensors_needs_no_torch(reference, monkeypatch):
    ref = reference["small"]
    monkeypatch.setitem(sys.modules, "torch", None)
    model = from_emg2qwerty(ref["safetensors"])
    assert np.abs(log_probs(model, ref["emg"]) - ref["expected"]).max() <= TOLERANCE


def edited_ckpt(tds_torch, reference, tmp_path, edit, name="edited.ckpt"):
    """The small reference checkpoint with its state dict changed by ``edit(state_dict)``."""
    from emgtf.converters.torch_checkpoint import load_lightning_checkpoint
    from tests.reference import lightning_ckpt

    ckpt = load_lightning_checkpoint(reference["small"]["ckpt"])
    edit(ckpt["state_dict"])
    path = tmp_path / name
    lightning_ckpt.save(ckpt, path)
    return path


def test_missing_extra_and_misshaped_tensors_are_named(reference, tds_torch, tmp_path):
    import torch

    key = "model.3.tds_conv_blocks.3.fc_block.2.bias"
    path = edited_ckpt(tds_torch, reference, tmp_path, lambda sd: sd.pop(key), "missing.ckpt")
    one_line_error(lambda: from_emg2qwerty(path), path, repr(key), "missing")

    extra = "model.3.tds_conv_blocks.4.conv2d.weight"
    path = edited_ckpt(tds_torch, reference, tmp_path,
                       lambda sd: sd.update({extra: torch.zeros(8, 8, 1, 8)}), "extra.ckpt")
    one_line_error(lambda: from_emg2qwerty(path), path, repr(extra), "unexpected")

    key = "model.1.mlps.1.mlp.0.weight"
    path = edited_ckpt(tds_torch, reference, tmp_path,
                       lambda sd: sd.update({key: torch.zeros(64, 527)}), "misshaped.ckpt")
    one_line_error(lambda: from_emg2qwerty(path), path, repr(key), "(64, 527)", "(64, 528)")


def test_safetensors_errors_use_the_files_own_key_names(reference, tmp_path):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(reference["small"]["safetensors"]))
    assert "final_layer.weight" in tensors and not [k for k in tensors if k.startswith("model.4.")]
    del tensors["final_layer.bias"]
    path = tmp_path / "no_bias.safetensors"
    save_file(tensors, str(path))
    one_line_error(lambda: from_emg2qwerty(path), path, "'final_layer.bias'", "missing")


def test_another_architecture_is_refused(tds_torch, tmp_path):
    import torch
    from omegaconf import OmegaConf

    # A recurrent model's Lightning checkpoint: same file format, other tensors.
    lstm = torch.nn.Sequential(torch.nn.LSTM(528, 32))
    path = tmp_path / "lstm.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in lstm.state_dict().items()},
                "hyper_parameters": OmegaConf.create({"hidden_size": 32})}, path)
    one_line_error(lambda: from_emg2qwerty(path), path, "'model.1.mlps.0.mlp.0.weight'",
                   "not a TDS-Conv CTC checkpoint")

    # The same keys with another front end (SplashNet's 6 bands: in_features 96).
    splash = tds_torch.TDSConvCTC(in_features=96, mlp_features=[16], block_channels=[4],
                                  kernel_width=4)
    path = tmp_path / "splash.ckpt"
    tds_torch.save_lightning_ckpt(splash, path, {"in_features": 96, "mlp_features": [16],
                                                 "block_channels": [4], "kernel_width": 4})
    one_line_error(lambda: from_emg2qwerty(path), path, "in_features", "96")
    path = tmp_path / "splash.safetensors"
    tds_torch.save_safetensors(splash, path)
    one_line_error(lambda: from_emg2qwerty(path), path, "'model.1.mlps.0.mlp.0.weight'", "96")
