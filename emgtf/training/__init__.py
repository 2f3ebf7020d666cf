"""Training: one Keras ``fit`` of a config, used by ``python -m emgtf.fit`` and by the tuner.

- ``loop``: ``train``, the loop itself (resume, checkpoints, validation);
- ``targets``: each window's emission length and labels as CTCLoss's ``y_true``;
- ``ctc``: ``CTCLoss`` (the CTC contract, below inference);
- ``callbacks``: validation, divergence guard, history, checkpoints;
- ``optimizers``, ``schedules``: Adam(W) and warm-up + cosine;
- ``history``: the end-of-run table (``history.csv``: ``emgtf.run_folder``);
- ``run_dir``: run folders; ``runtime``: seed, determinism,
  precision; ``distribute``: several devices and hosts;
- ``wandb_logging``: Weights & Biases.
"""

__all__ = ["TrainResult", "TrainingDiverged", "train"]


def __getattr__(name):
    # The loop imports Hydra; reading a history (emgtf.report) must not pay for it.
    if name in __all__:
        from emgtf.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'emgtf.training' has no attribute {name!r}")
