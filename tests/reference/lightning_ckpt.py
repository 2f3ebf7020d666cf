"""Lightning ``.ckpt`` files as PyTorch Lightning writes them, without Lightning installed.

:func:`save_lightning_ckpt` writes the whole envelope of a Lightning 1.x checkpoint: ``epoch``,
``global_step``, ``pytorch-lightning_version``, ``state_dict``, ``loops`` (progress counters),
``callbacks`` (a ModelCheckpoint's state with its tensor score), ``optimizer_states`` (a real Adam
state after one step), ``lr_schedulers``, ``hparams_name`` and ``hyper_parameters``: the module's
``hparams``, an ``AttributeDict`` whose values are the omegaconf containers Hydra passes
(``ListConfig`` sizes, ``DictConfig`` optimizer / scheduler / decoder configs).

Lightning's ``AttributeDict`` is pickled by reference to its module, which pickle imports when it
writes; :class:`AttributeDict` stands in for it under pytorch_lightning 1.x's module path, which
is registered in ``sys.modules`` only while a file is being written.
"""

from __future__ import annotations

import contextlib
import sys
import types

import torch
from omegaconf import OmegaConf

LIGHTNING_MODULE = "pytorch_lightning.utilities.parsing"


class AttributeDict(dict):
    """Stand-in for Lightning's ``AttributeDict``: a dict with attribute access."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError as error:
            raise AttributeError(key) from error

    def __setattr__(self, key, value):
        self[key] = value


AttributeDict.__module__ = LIGHTNING_MODULE


@contextlib.contextmanager
def lightning_importable():
    """pytorch_lightning.utilities.parsing importable (holding :class:`AttributeDict`)."""
    names = ("pytorch_lightning", "pytorch_lightning.utilities", LIGHTNING_MODULE)
    saved = {name: sys.modules.get(name) for name in names}
    for name in names:
        module = types.ModuleType(name)
        module.AttributeDict = AttributeDict
        sys.modules[name] = module
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def hparams(hyper_parameters: dict) -> AttributeDict:
    """A module's ``hparams`` as Lightning saves them after Hydra's ``instantiate``: lists and
    dicts as omegaconf containers, scalars as they are."""
    hp = dict(hyper_parameters)
    hp.setdefault("optimizer", {"_target_": "torch.optim.Adam", "lr": 0.001})
    hp.setdefault("lr_scheduler", {
        "scheduler": {"_target_": "pl_bolts.optim.lr_scheduler.LinearWarmupCosineAnnealingLR",
                      "warmup_epochs": 10, "max_epochs": 150, "warmup_start_lr": 1e-8,
                      "eta_min": 1e-6},
        "interval": "epoch",
    })
    hp.setdefault("decoder", {"_target_": "emg2qwerty.decoder.CTCGreedyDecoder"})
    return AttributeDict({
        k: OmegaConf.create(v) if isinstance(v, (list, tuple, dict)) else v for k, v in hp.items()
    })


def envelope(model: torch.nn.Module, hyper_parameters: dict, **extra) -> dict:
    """The checkpoint dict of ``model`` (one Adam step taken on a copy of its parameters)."""
    params = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    sum(p.sum() for p in params).backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=150)
    return {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "1.8.6",
        "state_dict": model.state_dict(),
        "loops": {
            "fit_loop": {
                "state_dict": {},
                "epoch_progress": {"total": {"ready": 4, "started": 4, "processed": 3,
                                             "completed": 3}, "current": {"ready": 4}},
                "epoch_loop.state_dict": {"_batches_that_stepped": 120},
            },
            "validate_loop": {"state_dict": {}},
        },
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val/CER', 'mode': 'min', 'every_n_train_steps': 0, "
            "'every_n_epochs': 1, 'train_time_interval': None}": {
                "monitor": "val/CER",
                "best_model_score": torch.tensor(42.5),
                "best_model_path": "/logs/checkpoints/epoch=2-step=90.ckpt",
                "current_score": torch.tensor(43.0),
                "dirpath": "/logs/checkpoints",
                "best_k_models": {"/logs/checkpoints/epoch=2-step=90.ckpt": torch.tensor(42.5)},
                "kth_best_model_path": "/logs/checkpoints/epoch=2-step=90.ckpt",
                "kth_value": torch.tensor(42.5),
                "last_model_path": "",
            },
        },
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [scheduler.state_dict()],
        "hparams_name": "kwargs",
        "hyper_parameters": hparams(hyper_parameters),
        **extra,
    }


def save(checkpoint: dict, path) -> None:
    """``torch.save`` with Lightning's AttributeDict importable under its own name."""
    with lightning_importable():
        torch.save(checkpoint, path)


def save_lightning_ckpt(model: torch.nn.Module, path, hyper_parameters: dict, **extra) -> None:
    """``model`` as a Lightning ``.ckpt`` with these ``hyper_parameters`` (the whole envelope)."""
    save(envelope(model, hyper_parameters, **extra), path)
