"""A .ckpt cannot run code: crafted files with a pickled os.system call in each part of a
Lightning checkpoint are refused in one line, a marker file proving the call never ran; genuine
envelopes (omegaconf hyperparameters in Lightning's AttributeDict, Adam state, scheduler,
callbacks, loops) load."""

from __future__ import annotations

import os
import zipfile

import pytest

from emgtf.converters import from_emg2qwerty
from emgtf.converters.torch_checkpoint import ATTRIBUTE_DICT_NAMES, load_lightning_checkpoint
from emgtf.errors import EmgtfError
from tests.helpers import run_command

torch = pytest.importorskip("torch")

SMALL = dict(mlp_features=[16], block_channels=[4], kernel_width=4)


class Payload:
    """Unpickling this calls ``os.system("touch MARKER")``: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.fixture(scope="module")
def small_model():
    from tests.reference import tds_torch

    torch.manual_seed(0)
    return tds_torch.make_tds_torch(**SMALL)


def genuine(small_model, **extra) -> dict:
    from tests.reference import lightning_ckpt

    return lightning_ckpt.envelope(small_model, {"in_features": 528, **SMALL}, **extra)


def write(checkpoint: dict, path, **kwargs):
    from tests.reference import lightning_ckpt

    lightning_ckpt.save(checkpoint, path) if not kwargs else torch.save(checkpoint, path, **kwargs)
    return path


def refused(path, marker, *needles) -> str:
    with pytest.raises(EmgtfError) as caught:
        load_lightning_checkpoint(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    for needle in needles:
        assert needle in message, (needle, message)
    assert not marker.exists(), "the payload ran"
    return message


def place(where: str, checkpoint: dict, payload) -> None:
    if where == "state_dict":
        checkpoint["state_dict"]["model.4.bias"] = payload
    elif where == "hyper_parameters":
        checkpoint["hyper_parameters"]["decoder"] = payload
    elif where == "nested":
        checkpoint["callbacks"]["EarlyStopping"] = {"history": [(1, {"scores": [payload]})]}
    elif where == "optimizer_state":
        checkpoint["optimizer_states"][0]["state"][0]["exp_avg"] = payload
    else:
        raise AssertionError(where)


@pytest.mark.parametrize("where", ["state_dict", "hyper_parameters", "nested", "optimizer_state"])
def test_a_payload_anywhere_is_refused_and_never_runs(small_model, tmp_path, where):
    marker = tmp_path / "ran"
    checkpoint = genuine(small_model)
    place(where, checkpoint, Payload(marker))
    path = write(checkpoint, tmp_path / f"{where}.ckpt")
    # The file is a real exploit: PyTorch's unrestricted loader runs it.
    proof = tmp_path / "proof"
    check = genuine(small_model)
    place(where, check, Payload(proof))
    from tests.reference import lightning_ckpt

    with lightning_ckpt.lightning_importable():
        torch.load(write(check, tmp_path / "proof.ckpt"), weights_only=False)
    assert proof.exists()

    refused(path, marker, "refused", f"names {os.system.__module__}.system",
            "nothing was loaded")
    with pytest.raises(EmgtfError, match="refused"):
        from_emg2qwerty(path)
    assert not marker.exists()


def test_a_payload_pickled_with_a_newer_protocol_is_refused(small_model, tmp_path):
    # Protocol 4 names globals with STACK_GLOBAL, which a scan of GLOBAL opcodes does not see:
    # the weights-only unpickler refuses the opcode itself.
    marker = tmp_path / "ran"
    checkpoint = genuine(small_model)
    place("hyper_parameters", checkpoint, Payload(marker))
    checkpoint["hyper_parameters"] = dict(checkpoint["hyper_parameters"])
    path = write(checkpoint, tmp_path / "p4.ckpt", pickle_protocol=4)
    refused(path, marker, "refused")


def test_an_object_outside_the_allowlist_is_named_even_if_harmless(small_model, tmp_path):
    import collections

    checkpoint = genuine(small_model)
    checkpoint["callbacks"]["Counter"] = collections.deque([1, 2])
    path = write(checkpoint, tmp_path / "deque.ckpt")
    refused(path, tmp_path / "none", "collections.deque")


def test_a_genuine_lightning_envelope_loads_in_full(small_model, tmp_path):
    from omegaconf import DictConfig, ListConfig

    path = write(genuine(small_model), tmp_path / "genuine.ckpt")
    ckpt = load_lightning_checkpoint(path)
    assert set(ckpt) == {"epoch", "global_step", "pytorch-lightning_version", "state_dict", "loops",
                         "callbacks", "optimizer_states", "lr_schedulers", "hparams_name",
                         "hyper_parameters"}
    assert (ckpt["epoch"], ckpt["global_step"], ckpt["hparams_name"]) == (3, 120, "kwargs")
    hp = ckpt["hyper_parameters"]
    assert type(hp) is dict  # Lightning's AttributeDict, read as the dict it is
    assert isinstance(hp["mlp_features"], ListConfig) and list(hp["mlp_features"]) == [16]
    assert isinstance(hp["optimizer"], DictConfig) and hp["optimizer"]["lr"] == 0.001
    assert hp["lr_scheduler"]["scheduler"]["warmup_epochs"] == 10
    state = ckpt["optimizer_states"][0]["state"]
    first = next(small_model.parameters())
    assert state[0]["exp_avg"].shape == first.shape and float(state[0]["step"]) == 1.0
    assert len(state) == len(list(small_model.parameters()))
    assert ckpt["lr_schedulers"][0]["T_max"] == 150
    (callback,) = ckpt["callbacks"].values()
    assert float(callback["best_model_score"]) == 42.5
    for key, value in small_model.state_dict().items():
        assert torch.equal(ckpt["state_dict"][key], value), key


@pytest.mark.parametrize("name", ATTRIBUTE_DICT_NAMES)
def test_each_lightning_release_lines_attribute_dict_loads(small_model, tmp_path, name):
    # The same stand-in class under each module path Lightning has defined AttributeDict in.
    import sys
    import types

    from tests.reference import lightning_ckpt

    module, _, cls = name.rpartition(".")
    stand_in = type(cls, (dict,), {"__module__": module})
    parts = module.split(".")
    saved = {".".join(parts[:i]): sys.modules.get(".".join(parts[:i])) for i in range(1, len(parts) + 1)}
    for mod in saved:
        sys.modules[mod] = types.SimpleNamespace(AttributeDict=stand_in)
    try:
        checkpoint = genuine(small_model)
        checkpoint["hyper_parameters"] = stand_in(checkpoint["hyper_parameters"])
        torch.save(checkpoint, tmp_path / "hp.ckpt")
    finally:
        for mod, value in saved.items():
            if value is None:
                sys.modules.pop(mod, None)
            else:
                sys.modules[mod] = value
    assert lightning_ckpt.LIGHTNING_MODULE in ATTRIBUTE_DICT_NAMES[0]
    hp = load_lightning_checkpoint(tmp_path / "hp.ckpt")["hyper_parameters"]
    assert type(hp) is dict and hp["kernel_width"] == 4


def test_a_zip_that_is_no_torch_archive_is_one_line(tmp_path):
    path = tmp_path / "notes.ckpt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes/readme.txt", "hello")
    with pytest.raises(EmgtfError) as caught:
        load_lightning_checkpoint(path)
    assert str(caught.value) == f"{path}: a zip archive but not a PyTorch checkpoint (no data.pkl in it)"


def test_cli_refuses_a_payload_in_one_line_and_writes_nothing(small_model, tmp_path, capsys):
    marker = tmp_path / "ran"
    checkpoint = genuine(small_model)
    place("hyper_parameters", checkpoint, Payload(marker))
    path = write(checkpoint, tmp_path / "evil.ckpt")
    out = tmp_path / "out" / "evil.keras"
    done = run_command(capsys, "convert", path, out)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"emgtf.convert: error: {path}: refused") and "system" in line
    assert not marker.exists() and not out.parent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.ckpt"]


@pytest.mark.parametrize("edit", ["missing", "extra"])
def test_cli_missing_or_extra_tensor_is_one_line_and_writes_nothing(small_model, tmp_path, capsys,
                                                                     edit):
    checkpoint = genuine(small_model)
    if edit == "missing":
        del checkpoint["state_dict"]["model.4.bias"]
        needle = "'model.4.bias' is missing"
    else:
        checkpoint["state_dict"]["model.6.weight"] = torch.zeros(3)
        needle = "unexpected tensor 'model.6.weight'"
    path = write(checkpoint, tmp_path / f"{edit}.ckpt")
    out = tmp_path / f"{edit}.keras"
    done = run_command(capsys, "convert", path, out)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"emgtf.convert: error: {path}: ") and needle in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{edit}.ckpt"]
