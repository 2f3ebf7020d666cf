"""Meta's released emg2qwerty checkpoints as emgtf ``tds_conv_ctc`` models, and SplashNet's as
``splashnet`` / ``splashnet_mini`` models.

Two file formats hold the TDS-Conv CTC baseline's weights (emg2qwerty paper and repository,
Sivakumar et al. 2024):

- a PyTorch Lightning ``.ckpt`` (Meta's ``models/generic.ckpt`` and the personalised ones): a
  ``torch.save`` archive with the ``state_dict`` and the module's ``hyper_parameters``
  (``in_features``, ``mlp_features``, ``block_channels``, ``kernel_width``). Reading it needs
  torch (``pip install "emgtf[torch]"``); it is read with PyTorch's weights-only unpickler and
  only the objects a Lightning checkpoint holds (``emgtf.converters.torch_checkpoint``), so a
  file cannot run code;
- a ``.safetensors`` file as braindecode publishes the generic model: the same tensors with
  ``model.4.*`` named ``final_layer.*`` and no hyperparameters, which are read off the tensor
  shapes instead. Read with numpy alone.

The state-dict keys and their PyTorch layouts:

    model.0.batch_norm.*                       BatchNorm2d over channel = band * 16 + electrode
    model.1.mlps.{band}.mlp.{2i}.weight/bias   per-band Linear (out, in), in = electrode * 33 + bin
    model.3.tds_conv_blocks.{2k}.conv2d.*      Conv2d(C, C, (1, kernel_width)), feature = c * W + w
    model.3.tds_conv_blocks.{2k}.layer_norm.*
    model.3.tds_conv_blocks.{2k+1}.fc_block.{0,2}.* and .layer_norm.*
    model.4.weight/bias                        Linear(2 * mlp_features[-1] -> 99)

SplashNet's checkpoints (``splashnet.ckpt``, ``splashnet-mini.ckpt``, arXiv 2506.12356) are
Lightning ``.ckpt`` files of its own ``TDSConvCTCModule``, with the same key names; its
hyperparameters (``spec_norm``, ``share_hand_weights``, ``split_decoding``, ``in_features`` 96
or 528) and the layouts they imply are ``emgtf.converters.splashnet``'s.

    model = from_emg2qwerty("generic.ckpt")   # (batch, samples, 2, 16) -> (batch, frames - 124, 99)
    convert("generic.ckpt", "generic.keras")  # the same model as a .keras file
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np

from emgtf import NUM_BANDS, NUM_CHANNELS
from emgtf.charset import charset
from emgtf.models import build
from emgtf.converters import splashnet
from emgtf.converters.torch_checkpoint import load_lightning_checkpoint
from emgtf.errors import EmgtfError, first_line
from emgtf.files import atomic_write

__all__ = ["convert", "from_emg2qwerty", "read_checkpoint"]

FAMILY = "tds_conv_ctc"
# The reference front end: 16 electrodes x the one-sided bins of the 64-point spectrogram per band.
REFERENCE_N_FFT = 64
IN_FEATURES = NUM_CHANNELS * (REFERENCE_N_FFT // 2 + 1)
_CLASSIFIER = "model.4."
_SAFETENSORS_CLASSIFIER = "final_layer."
# Counts training steps only; nothing in the forward pass reads it.
_OPTIONAL = {"model.0.batch_norm.num_batches_tracked"}
_HYPERPARAMETERS = ("in_features", "mlp_features", "block_channels", "kernel_width")


class _Checkpoint:
    """The tensors of one checkpoint as numpy arrays, keyed canonically (``model.4.*``), its
    hyperparameters (None when it has none) and how the file spells the classifier's keys."""

    def __init__(self, path: Path, tensors: Mapping, hyper_parameters, default_prefix: str):
        self.path = path
        self.tensors = {}
        self.classifier_prefix = default_prefix
        for key, value in tensors.items():
            canonical = key
            if key.startswith(_SAFETENSORS_CLASSIFIER):
                canonical = _CLASSIFIER + key[len(_SAFETENSORS_CLASSIFIER):]
                self.classifier_prefix = _SAFETENSORS_CLASSIFIER
            elif key.startswith(_CLASSIFIER):
                self.classifier_prefix = _CLASSIFIER
            # Either spelling is accepted, not both.
            if canonical in self.tensors:
                raise self.fail(f"tensor {key!r} duplicates {canonical!r}")
            self.tensors[canonical] = value
        self.hyper_parameters = hyper_parameters

    def name(self, key: str) -> str:
        """``key`` as the file spells it, for messages."""
        if key.startswith(_CLASSIFIER):
            return self.classifier_prefix + key[len(_CLASSIFIER):]
        return key

    def fail(self, problem: str) -> EmgtfError:
        return EmgtfError(f"{self.path}: {problem}")


# --- reading -----------------------------------------------------------------------------------


def _sniff(path: Path) -> str:
    """"torch" or "safetensors", from the file's first bytes rather than its name."""
    if not path.is_file():
        raise EmgtfError(f"{path}: checkpoint does not exist (or is not a file)")
    with open(path, "rb") as f:
        head = f.read(9)
    # torch.save writes a zip archive (or, before PyTorch 1.6, a pickle: protocol byte 0x80).
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return "torch"
    # safetensors: a little-endian u64 header length, then the JSON header.
    if len(head) == 9 and head[8:9] == b"{":
        header_length = int.from_bytes(head[:8], "little")
        if 8 + header_length <= path.stat().st_size:
            return "safetensors"
    raise EmgtfError(f"{path}: not a PyTorch Lightning .ckpt or a .safetensors checkpoint")


def _plain(value):
    """omegaconf containers (Lightning stores the Hydra config's) as python lists and dicts."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _read_torch(path: Path) -> _Checkpoint:
    ckpt = load_lightning_checkpoint(path)  # says how to install torch if it is missing
    import torch
    hyper_parameters = None
    if isinstance(ckpt, Mapping) and "state_dict" in ckpt:
        state_dict = ckpt["state_dict"]
        hyper_parameters = ckpt.get("hyper_parameters")
    elif isinstance(ckpt, Mapping) and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        state_dict = ckpt  # a bare state dict: hyperparameters come from the shapes
    else:
        raise EmgtfError(f"{path}: no 'state_dict' in the checkpoint (not a Lightning .ckpt?)")
    if not isinstance(state_dict, Mapping):
        raise EmgtfError(f"{path}: 'state_dict' is a {type(state_dict).__name__}, not a mapping")
    tensors = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise EmgtfError(f"{path}: state_dict entry {key!r} is not a tensor")
        value = value.detach().cpu()
        # bfloat16 has no numpy dtype; every floating tensor becomes float32 anyway.
        tensors[str(key)] = (value.float() if value.is_floating_point() else value).numpy()
    if hyper_parameters is not None and not isinstance(hyper_parameters, Mapping):
        raise EmgtfError(f"{path}: 'hyper_parameters' is a {type(hyper_parameters).__name__}, "
                         "not a mapping")
    if hyper_parameters is not None:
        hyper_parameters = {
            k: _plain(hyper_parameters[k])
            for k in (*_HYPERPARAMETERS, *splashnet.HYPERPARAMETERS)
            if k in hyper_parameters
        }
    return _Checkpoint(path, tensors, hyper_parameters, _CLASSIFIER)


def _read_safetensors(path: Path) -> _Checkpoint:
    try:
        from safetensors.numpy import load_file

        tensors = load_file(str(path))
    except Exception as e:  # SafetensorError and the numpy dtype errors alike
        raise EmgtfError(f"{path}: cannot read the safetensors file: {first_line(e)}") from None
    return _Checkpoint(path, tensors, None, _SAFETENSORS_CLASSIFIER)


def read_checkpoint(path) -> tuple[dict, dict]:
    """Checked tensors and hyperparameters of a Meta or SplashNet ``.ckpt`` or braindecode
    ``.safetensors``.

    Returns ``(tensors, hyperparameters)``: the state dict as numpy arrays in PyTorch layouts,
    keyed as in Meta's ``.ckpt`` (``model.4.*`` for the classifier), without
    ``num_batches_tracked``; and emgtf's hyperparameters ``mlp_features``, ``block_channels``,
    ``kernel_width`` (plus, for SplashNet, ``share_hands``, ``split_hands``, ``norm`` and
    ``spectrum``). Anything but exactly the expected tensors raises a one-line EmgtfError naming
    the file and the first key or shape that does not fit.
    """
    tensors, hp = _read(path)
    return tensors, _emgtf_hyperparameters(hp)


def _read(path) -> tuple[dict, dict]:
    path = Path(path).expanduser()
    ckpt = _read_torch(path) if _sniff(path) == "torch" else _read_safetensors(path)
    hp = _hyperparameters(ckpt)
    _check_tensors(ckpt, hp)
    return {k: v for k, v in ckpt.tensors.items() if k not in _OPTIONAL}, hp


def _emgtf_hyperparameters(hp: dict) -> dict:
    out = {k: hp[k] for k in ("mlp_features", "block_channels", "kernel_width")}
    if hp["splashnet"]:
        out.update(splashnet.emgtf_hyperparameters(hp))
    return out


def _family(hp: dict) -> str:
    return splashnet.family(hp) if hp["splashnet"] else FAMILY


# --- hyperparameters and shapes ----------------------------------------------------------------


def _positive_int(ckpt: _Checkpoint, key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ckpt.fail(f"hyper_parameters.{key}: expected a positive integer, got {value!r}")
    return int(value)


def _int_list(ckpt: _Checkpoint, key: str, value) -> list[int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ckpt.fail(f"hyper_parameters.{key}: expected a list of positive integers, "
                        f"got {value!r}")
    return [_positive_int(ckpt, key, v) for v in value]


def _shape(ckpt: _Checkpoint, key: str, ndim: int) -> tuple[int, ...]:
    if key not in ckpt.tensors:
        raise ckpt.fail(f"tensor {ckpt.name(key)!r} is missing (not a TDS-Conv CTC checkpoint?)")
    shape = tuple(ckpt.tensors[key].shape)
    if len(shape) != ndim:
        raise ckpt.fail(f"tensor {ckpt.name(key)!r} has shape {shape}, expected {ndim} dimensions")
    return shape


def _mlp_key(band: int, layer: int) -> str:
    # Linear and ReLU alternate in the reference's nn.Sequential: the Linears are 0, 2, 4, ...
    return f"model.1.mlps.{band}.mlp.{2 * layer}"


def _block_key(index: int) -> str:
    return f"model.3.tds_conv_blocks.{index}"


def _inferred(ckpt: _Checkpoint) -> dict:
    """Sizes read off the tensor shapes (what a safetensors file has)."""
    in_features = _shape(ckpt, _mlp_key(0, 0) + ".weight", 2)[1]
    mlp_features = []
    while _mlp_key(0, len(mlp_features)) + ".weight" in ckpt.tensors:
        mlp_features.append(_shape(ckpt, _mlp_key(0, len(mlp_features)) + ".weight", 2)[0])
    first = _shape(ckpt, _block_key(0) + ".conv2d.weight", 4)
    block_channels = []
    while _block_key(2 * len(block_channels)) + ".conv2d.weight" in ckpt.tensors:
        key = _block_key(2 * len(block_channels)) + ".conv2d.weight"
        block_channels.append(_shape(ckpt, key, 4)[0])
    return {
        "in_features": in_features,
        "mlp_features": mlp_features,
        "block_channels": block_channels,
        "kernel_width": first[3],
    }


def _hyperparameters(ckpt: _Checkpoint) -> dict:
    """The checkpoint's own hyperparameters where it has them, else the shapes'."""
    stored = ckpt.hyper_parameters or {}
    is_splashnet = splashnet.is_splashnet(stored)
    hp = dict(stored) if all(k in stored for k in _HYPERPARAMETERS) else {**_inferred(ckpt), **stored}
    in_features = _positive_int(ckpt, "in_features", hp["in_features"])
    source = ("hyper_parameters.in_features" if "in_features" in stored
              else f"tensor {ckpt.name(_mlp_key(0, 0) + '.weight')!r} has in_features")
    out = {
        "in_features": in_features,
        "mlp_features": _int_list(ckpt, "mlp_features", hp["mlp_features"]),
        "block_channels": _int_list(ckpt, "block_channels", hp["block_channels"]),
        "kernel_width": _positive_int(ckpt, "kernel_width", hp["kernel_width"]),
        "splashnet": is_splashnet,
        "share": False,
        "norm": "batch",
        "spectrum": "full",
    }
    if is_splashnet:
        out.update(splashnet.hyperparameters(stored, ckpt.fail))
        out["spectrum"] = splashnet.spectrum(in_features, source, ckpt.fail)
    elif in_features != IN_FEATURES:
        raise ckpt.fail(f"{source} {in_features}, not {IN_FEATURES} (16 electrodes x 33 bins of the "
                        "64-point spectrogram: not a TDS-Conv CTC baseline checkpoint)")
    return out


def _modules(hp: dict) -> int:
    """Rotation-invariant MLPs in the file: one per band unless SplashNet shares them."""
    return 1 if hp["share"] else NUM_BANDS


def _expected_shapes(hp: dict) -> dict[str, tuple[int, ...]]:
    """Every tensor of the reference model with these hyperparameters, in state-dict order."""
    channels = NUM_BANDS * NUM_CHANNELS
    shapes = {}
    if hp["norm"] == "batch":
        shapes.update({f"model.0.batch_norm.{name}": (channels,)
                       for name in ("weight", "bias", "running_mean", "running_var")})
    for band in range(_modules(hp)):
        fan_in = hp["in_features"]
        for layer, fan_out in enumerate(hp["mlp_features"]):
            shapes[_mlp_key(band, layer) + ".weight"] = (fan_out, fan_in)
            shapes[_mlp_key(band, layer) + ".bias"] = (fan_out,)
            fan_in = fan_out
    features = NUM_BANDS * hp["mlp_features"][-1]
    # Shared hands: the blocks run on each hand's half of the features.
    width = hp["mlp_features"][-1] if hp["share"] else features
    for k, c in enumerate(hp["block_channels"]):
        conv, fc = _block_key(2 * k), _block_key(2 * k + 1)
        shapes[conv + ".conv2d.weight"] = (c, c, 1, hp["kernel_width"])
        shapes[conv + ".conv2d.bias"] = (c,)
        shapes[conv + ".layer_norm.weight"] = shapes[conv + ".layer_norm.bias"] = (width,)
        for i in (0, 2):
            shapes[f"{fc}.fc_block.{i}.weight"] = (width, width)
            shapes[f"{fc}.fc_block.{i}.bias"] = (width,)
        shapes[fc + ".layer_norm.weight"] = shapes[fc + ".layer_norm.bias"] = (width,)
    shapes[_CLASSIFIER + "weight"] = (charset().num_classes, features)
    shapes[_CLASSIFIER + "bias"] = (charset().num_classes,)
    return shapes


def _architecture(hp: dict) -> str:
    text = ", ".join(f"{k}={hp[k]}" for k in _HYPERPARAMETERS)
    if hp["splashnet"]:
        spec_norm = {v: k for k, v in splashnet.NORMS.items()}[hp["norm"]]
        text += f", share_hand_weights={hp['share']}, spec_norm={spec_norm!r}"
    return text


def _check_tensors(ckpt: _Checkpoint, hp: dict) -> None:
    """Exactly the tensors ``hp`` calls for, each of its shape; else an error naming the first
    that does not fit, in the file's own order, then the first missing one."""
    expected = _expected_shapes(hp)
    stored = all(k in (ckpt.hyper_parameters or {}) for k in _HYPERPARAMETERS)
    why = (f"the checkpoint's hyper_parameters say {_architecture(hp)}" if stored
           else f"not a TDS-Conv CTC checkpoint? its shapes say {_architecture(hp)}")
    for key, value in ckpt.tensors.items():
        if key in _OPTIONAL:
            continue
        if key not in expected:
            raise ckpt.fail(f"unexpected tensor {ckpt.name(key)!r} ({why})")
        found = tuple(value.shape)
        if found != expected[key]:
            raise ckpt.fail(f"tensor {ckpt.name(key)!r} has shape {found}, expected "
                            f"{expected[key]} ({why})")
    for key in expected:
        if key not in ckpt.tensors:
            raise ckpt.fail(f"tensor {ckpt.name(key)!r} is missing ({why})")


# --- the Keras model ---------------------------------------------------------------------------


def _assign(assigned: list, variable, value: np.ndarray) -> None:
    variable.assign(np.ascontiguousarray(value, dtype=np.float32))
    assigned.append(variable.path)


def from_emg2qwerty(path) -> keras.Model:
    """An emgtf model with the weights of Meta's or SplashNet's checkpoint at ``path``.

    ``path``: a PyTorch Lightning ``.ckpt`` (needs torch) or braindecode ``.safetensors``. The
    model (``tds_conv_ctc``, or ``splashnet`` / ``splashnet_mini``) is built with the
    checkpoint's own ``mlp_features``, ``block_channels`` and ``kernel_width`` (and SplashNet's
    hand sharing and normalisation) and maps raw EMG ``(batch, samples, 2, 16)`` to
    log-probabilities ``(batch, frames - len(block_channels) * (kernel_width - 1), 99)``, frames
    = 1 + (samples - 64) // 16, as the PyTorch model does on the same signal.
    """
    path = Path(path).expanduser()
    tensors, ckpt_hp = _read(path)
    try:
        model = build(_family(ckpt_hp), **_emgtf_hyperparameters(ckpt_hp))
    except EmgtfError as e:
        raise EmgtfError(f"{path}: {e}") from None
    assigned: list = []

    if ckpt_hp["norm"] == "batch":
        norm = model.get_layer("spectrogram_norm")
        bn = "model.0.batch_norm."
        _assign(assigned, norm.gamma, tensors[bn + "weight"])
        _assign(assigned, norm.beta, tensors[bn + "bias"])
        _assign(assigned, norm.moving_mean, tensors[bn + "running_mean"])
        # PyTorch keeps the unbiased variance where Keras keeps the biased one, but both
        # normalise inference inputs by the stored value itself, so the number carries over.
        _assign(assigned, norm.moving_variance, tensors[bn + "running_var"])

    # Linear weights are (out, in); Keras kernels are (in, out), one per MLP stacked first.
    mlp = model.get_layer("rotation_mlp")
    for layer, (kernel, bias) in enumerate(zip(mlp.kernels, mlp.biases, strict=True)):
        keys = [_mlp_key(band, layer) for band in range(_modules(ckpt_hp))]
        _assign(assigned, kernel, np.stack([tensors[k + ".weight"].T for k in keys]))
        _assign(assigned, bias, np.stack([tensors[k + ".bias"] for k in keys]))

    _assign_encoder(assigned, model, tensors, ckpt_hp)

    classifier = model.get_layer("classifier")
    _assign(assigned, classifier.kernel, tensors[_CLASSIFIER + "weight"].T)
    _assign(assigned, classifier.bias, tensors[_CLASSIFIER + "bias"])

    # A family change that adds a weight must not leave it at its initial value unnoticed.
    left = sorted({w.path for w in model.weights} - set(assigned))
    if left:
        raise RuntimeError(f"from_emg2qwerty: no checkpoint tensor for {', '.join(left)}")
    return model


def _assign_encoder(assigned: list, model, tensors: dict, hp: dict) -> None:
    for k in range(len(hp["block_channels"])):
        conv, fc = _block_key(2 * k), _block_key(2 * k + 1)
        block = model.get_layer(f"tds_conv_{k + 1}")
        # Conv2d weight (out, in, 1, time) -> Conv2D kernel (time, 1, in, out) over
        # (batch, time, width, channels): the same cross-correlation.
        _assign(assigned, block.conv.kernel, tensors[conv + ".conv2d.weight"].transpose(3, 2, 1, 0))
        _assign(assigned, block.conv.bias, tensors[conv + ".conv2d.bias"])
        _assign(assigned, block.layer_norm.gamma, tensors[conv + ".layer_norm.weight"])
        _assign(assigned, block.layer_norm.beta, tensors[conv + ".layer_norm.bias"])
        block = model.get_layer(f"tds_fc_{k + 1}")
        for dense, i in ((block.dense_1, 0), (block.dense_2, 2)):
            _assign(assigned, dense.kernel, tensors[f"{fc}.fc_block.{i}.weight"].T)
            _assign(assigned, dense.bias, tensors[f"{fc}.fc_block.{i}.bias"])
        _assign(assigned, block.layer_norm.gamma, tensors[fc + ".layer_norm.weight"])
        _assign(assigned, block.layer_norm.beta, tensors[fc + ".layer_norm.bias"])


def convert(src, out_path) -> keras.Model:
    """Writes Meta's or SplashNet's checkpoint ``src`` as an emgtf ``.keras`` file at ``out_path``.

    The file loads with ``emgtf.inference.checkpoints.load_checkpoint`` and works with
    ``python -m emgtf.evaluate``, ``transcribe`` and ``export``. An existing ``out_path`` is never
    written over, and a failure leaves no file behind. Returns the model.
    """
    out = Path(out_path).expanduser()
    if out.suffix != ".keras":
        raise EmgtfError(f"{out}: the output must be a .keras file")
    if out.exists():
        raise EmgtfError(f"{out}: exists; it is never written over (choose another path)")
    model = from_emg2qwerty(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, model.save)
    return model
