"""SplashNet's checkpoints as the authors' module writes them: every layout of
shared/fixtures/splashnet-checkpoint-layout.txt (both sizes, shared and un-shared hands, each
norm) converts to an emgtf model giving the PyTorch reference's log-probabilities within 1e-4,
from a file with the whole Lightning envelope and the module's saved hyperparameters."""

from __future__ import annotations

import ast
import re

import numpy as np
import pytest

from emgtf.converters import from_emg2qwerty, read_checkpoint
from emgtf.inference.checkpoints import load_checkpoint
from emgtf.models import emission_lengths
from tests.converters.common import log_probs, one_line_error
from tests.helpers import FIXTURES, run_command

torch = pytest.importorskip("torch")

TOLERANCE = 1e-4
LAYOUT = FIXTURES / "splashnet-checkpoint-layout.txt"
# 147 frames: past RollingTimeNorm's 125-frame warm-up, 23 frames of output after 4 x 31 lost.
SAMPLES = 2400
_SECTION = re.compile(
    r"^## (\w+): mlp_features=(\[[^\]]*\]) block_channels=(\[[^\]]*\]) "
    r"share_hand_weights=(True|False) spec_norm='(\w+)': ([\d,]+) trainable parameters$"
)


def fixture_layouts() -> dict[str, dict]:
    """Each section of the fixture: its size, hyperparameters, parameter count and
    ``key -> (shape, dtype)`` in the file's order."""
    layouts, current = {}, None
    for line in LAYOUT.read_text().splitlines():
        match = _SECTION.match(line)
        if match:
            size, mlp, blocks, share, norm, count = match.groups()
            name = f"{size}-{'shared' if share == 'True' else 'unshared'}-{norm}"
            current = layouts[name] = {
                "size": size,
                "hp": dict(mlp_features=ast.literal_eval(mlp), block_channels=ast.literal_eval(blocks),
                           share_hand_weights=share == "True", spec_norm=norm),
                "parameters": int(count.replace(",", "")),
                "keys": {},
            }
        elif current is not None and line.startswith("model."):
            key, shape, dtype = line.split("\t")
            current["keys"][key] = (ast.literal_eval(shape), dtype)
    return layouts


LAYOUTS = fixture_layouts()


def raw_emg(samples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 2.5, (1, samples, 2, 16)).astype("float32")


@pytest.fixture(scope="module")
def splashnet_torch():
    from tests.reference import splashnet_torch

    return splashnet_torch


def reference_file(splashnet_torch, path, size, seed, samples=SAMPLES, **hp):
    """A SplashNet with random weights (and BatchNorm statistics) written as the authors' .ckpt;
    returns the model, the EMG and the PyTorch log-probabilities on it."""
    from tests.reference import tds_torch

    torch.manual_seed(seed)
    model = splashnet_torch.make_splashnet_torch(size, **hp)
    tds_torch.randomize_batch_norm(model, seed=seed)
    model.eval()
    emg = raw_emg(samples, seed)
    with torch.no_grad():
        expected = model(torch.from_numpy(emg)).numpy()
    splashnet_torch.save_lightning_ckpt(model, path, splashnet_torch.hyperparameters(size, **hp))
    return model, emg, expected


def test_the_fixture_lists_both_sizes_shared_and_unshared_with_each_norm():
    assert len(LAYOUTS) == 8
    assert {(v["size"], v["hp"]["share_hand_weights"], v["hp"]["spec_norm"]) for v in LAYOUTS.values()} \
        == {(s, share, norm) for s in ("splashnet", "splashnet_mini") for share in (True, False)
            for norm in ("RollingTimeNorm", "BatchNorm2d")}


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_reference_has_the_authors_keys_shapes_and_sizes(splashnet_torch, name):
    layout = LAYOUTS[name]
    model = splashnet_torch.make_splashnet_torch(layout["size"], **layout["hp"])
    state = model.state_dict()
    assert list(state) == list(layout["keys"])
    for key, (shape, dtype) in layout["keys"].items():
        assert tuple(state[key].shape) == shape and str(state[key].dtype) == f"torch.{dtype}", key
    assert sum(p.numel() for p in model.parameters()) == layout["parameters"]


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_each_published_layout_converts_to_the_pytorch_log_probabilities(splashnet_torch, tmp_path,
                                                                          name):
    layout = LAYOUTS[name]
    path = tmp_path / f"{name}.ckpt"
    _, emg, expected = reference_file(splashnet_torch, path, layout["size"],
                                      seed=list(LAYOUTS).index(name), **layout["hp"])
    model = from_emg2qwerty(path)
    assert model.name == layout["size"]
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == layout["parameters"]
    layers = {layer.name for layer in model.layers}
    assert ("fold_hands" in layers) == layout["hp"]["share_hand_weights"]
    assert not [n for n in layers if n.startswith("hand")]  # un-shared: one encoder over both
    assert ("spectrogram_norm" in layers) == (layout["hp"]["spec_norm"] == "BatchNorm2d")
    assert ("rolling_time_norm" in layers) == (layout["hp"]["spec_norm"] == "RollingTimeNorm")
    found = log_probs(model, emg)
    assert found.shape == expected.shape == (1, emission_lengths(model, SAMPLES), 99)
    assert np.abs(found - expected).max() <= TOLERANCE


# Small models for the settings the published files do not use: no normalisation, the full
# 33-bin input (in_features 528), split_decoding on; each with shared and separate hands.
SMALL = dict(mlp_features=[32], block_channels=[8, 4], kernel_width=6)
SETTINGS = {
    "none-6band-shared": dict(spec_norm="None", share_hand_weights=True),
    "none-33bin-unshared": dict(spec_norm="None", in_features=528, share_hand_weights=False),
    "batch-33bin-shared-split": dict(spec_norm="BatchNorm2d", in_features=528,
                                     share_hand_weights=True, split_decoding=True),
    "rolling-6band-unshared-split": dict(spec_norm="RollingTimeNorm", share_hand_weights=False,
                                         split_decoding=True),
}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_every_saved_hyperparameter_value_converts(splashnet_torch, tmp_path, name):
    hp = {**SMALL, **SETTINGS[name]}
    path = tmp_path / f"{name}.ckpt"
    # 1,000 samples: 59 frames, shorter than the warm-up (whole-input statistics).
    _, emg, expected = reference_file(splashnet_torch, path, "splashnet", seed=7, samples=1000, **hp)
    model = from_emg2qwerty(path)
    assert model.name == "splashnet"
    _, read = read_checkpoint(path)
    norm = {"None": "none", "BatchNorm2d": "batch", "RollingTimeNorm": "rolling"}[hp["spec_norm"]]
    assert read == {**SMALL, "share_hands": hp["share_hand_weights"], "split_hands": False,
                    "norm": norm, "spectrum": "full" if hp.get("in_features") == 528 else "6band"}
    found = log_probs(model, emg)
    assert found.shape == expected.shape
    assert np.abs(found - expected).max() <= TOLERANCE


def test_bad_hyperparameter_values_are_one_line_naming_the_key(splashnet_torch, tmp_path):
    model = splashnet_torch.make_splashnet_torch("splashnet_mini", **SMALL)
    cases = (
        (dict(spec_norm="LayerNorm"), "hyper_parameters.spec_norm: expected one of "
         "'RollingTimeNorm', 'BatchNorm2d', 'None', got 'LayerNorm'"),
        (dict(spec_norm="rolling"), "got 'rolling'"),
        (dict(share_hand_weights="yes"), "hyper_parameters.share_hand_weights: expected true or false"),
        (dict(split_decoding=1), "hyper_parameters.split_decoding: expected true or false, got 1"),
        (dict(in_features=100), "hyper_parameters.in_features 100: SplashNet's are 96"),
    )
    for i, (hp, needle) in enumerate(cases):
        path = tmp_path / f"bad{i}.ckpt"
        splashnet_torch.save_lightning_ckpt(model, path, {**SMALL, **hp})
        one_line_error(lambda: from_emg2qwerty(path), path, needle)


def test_a_layout_that_fits_no_architecture_names_the_first_key_that_does_not_fit(
        splashnet_torch, tmp_path):
    from emgtf.converters.torch_checkpoint import load_lightning_checkpoint
    from tests.reference import lightning_ckpt

    model = splashnet_torch.make_splashnet_torch("splashnet_mini", **SMALL)
    # Shared-hand tensors labelled un-shared: the first LayerNorm is half the width expected.
    path = tmp_path / "mislabelled.ckpt"
    splashnet_torch.save_lightning_ckpt(model, path, {**SMALL, "share_hand_weights": False})
    one_line_error(lambda: from_emg2qwerty(path), path,
                   "tensor 'model.3.tds_conv_blocks.0.layer_norm.weight' has shape (32,), "
                   "expected (64,)", "share_hand_weights=False, spec_norm='RollingTimeNorm'")
    # The layout emgtf once guessed (one encoder per hand under model.2): the first foreign key.
    ckpt = load_lightning_checkpoint(path)
    ckpt["state_dict"] = {k.replace("model.3.", "model.2.encoders.0."): v
                          for k, v in ckpt["state_dict"].items()}
    ckpt["hyper_parameters"]["share_hand_weights"] = True
    path = tmp_path / "guessed.ckpt"
    lightning_ckpt.save(ckpt, path)
    one_line_error(lambda: from_emg2qwerty(path), path,
                   "unexpected tensor 'model.2.encoders.0.tds_conv_blocks.0.conv2d.weight'")
    # The authors' fine-tuning module's layout (a copy of the front per hand): its first key.
    ckpt = load_lightning_checkpoint(path)
    ckpt["state_dict"] = {k.replace("model.2.encoders.0.", "left_processor.3.").replace("model.1.", "left_processor.1."): v
                          for k, v in ckpt["state_dict"].items()}
    path = tmp_path / "finetune.ckpt"
    lightning_ckpt.save(ckpt, path)
    one_line_error(lambda: from_emg2qwerty(path), path,
                   "unexpected tensor 'left_processor.1.mlps.0.mlp.0.weight'")
    # A batch-norm file whose statistics are gone.
    ckpt = load_lightning_checkpoint(path)
    path = tmp_path / "no_norm.ckpt"
    ckpt["state_dict"] = dict(model.state_dict())
    ckpt["hyper_parameters"]["spec_norm"] = "BatchNorm2d"
    lightning_ckpt.save(ckpt, path)
    one_line_error(lambda: from_emg2qwerty(path), path,
                   "tensor 'model.0.batch_norm.weight' is missing")


def test_cli_converts_a_splashnet_checkpoint(splashnet_torch, tmp_path, capsys):
    path = tmp_path / "mini.ckpt"
    model, emg, expected = reference_file(splashnet_torch, path, "splashnet_mini", seed=3,
                                          samples=1000, **SMALL, share_hand_weights=False,
                                          spec_norm="BatchNorm2d")
    out = tmp_path / "mini.keras"
    done = run_command(capsys, "convert", path, out)
    assert done.returncode == 0, done.stderr[-2000:]
    parameters = sum(p.numel() for p in model.parameters())
    assert done.stdout.strip() == f"emgtf.convert: splashnet, {parameters:,} trainable parameters -> {out}"
    loaded = load_checkpoint(out, "splashnet")
    assert np.abs(log_probs(loaded, emg) - expected).max() <= TOLERANCE
