"""Training: one Keras ``fit`` of a config, used by ``python -m emgtf.fit`` and by the tuner.

- :mod:`~emgtf.training.loop`: :func:`train`, the loop itself (resume, checkpoints, validation);
- :mod:`~emgtf.training.targets`: each window's emission length and labels as CTCLoss's ``y_true``;
- :mod:`~emgtf.models.ctc`: :class:`CTCLoss` (the CTC contract, below inference);
- :mod:`~emgtf.training.callbacks`: validation, divergence guard, history, checkpoints;
- :mod:`~emgtf.training.optimizers`, :mod:`~emgtf.training.schedules`: Adam(W) and warm-up + cosine;
- :mod:`~emgtf.training.history`: the end-of-run table (``history.csv``: :mod:`emgtf.run_folder`);
- :mod:`~emgtf.training.run_dir`: run folders; :mod:`~emgtf.training.runtime`: seed, determinism,
  precision; :mod:`~emgtf.training.distribute`: several devices and hosts;
- :mod:`~emgtf.training.wandb_logging`: Weights & Biases.
"""

__all__ = ["TrainResult", "TrainingDiverged", "train"]


def __getattr__(name):
    # The loop imports Hydra; reading a history (emgtf.report) must not pay for it.
    if name in __all__:
        from emgtf.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'emgtf.training' has no attribute {name!r}")
