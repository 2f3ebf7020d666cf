"""``python -m emgtf.fit [key=value ...]``: train a model, then evaluate its best checkpoint on test.

With no arguments: a small model on the embedded synthetic dataset, sized for a laptop CPU.
``trainer=reference`` is Meta's full recipe (GPU-sized). Everything is a Hydra override of
``configs/fit.yaml``: pick a config group option (``model=rnn``, ``data=user_89335547``) or set a
value (``trainer.epochs=30``, ``data.root=/data/emg2qwerty``). ``--dry-run`` prints the resolved
config and exits; ``--help`` lists the groups and their options.

``checkpoint=FILE.keras`` starts from that model's weights with a fresh optimizer (fine-tuning,
e.g. a converted Meta generic model on one user's split); the model family is the checkpoint's
unless ``model=...`` is given.

``resume=true run_dir=RUN`` continues a stopped run from ``RUN/last.keras`` with the config in
``RUN/config.yaml`` (further ``key=value`` overrides apply on top, e.g. ``trainer.epochs=200`` to
train longer; note that this stretches the learning-rate schedule from then on).
"""

from __future__ import annotations

import sys
from pathlib import Path

from emgtf.cli.parsing import CommandParser
from emgtf.console import console_log
from emgtf.errors import EmgtfError

PROG = "python -m emgtf.fit"

# Keys shown in --help beside the groups: the ones people change most.
COMMON_KEYS = (
    ("data.root", "folder of session .hdf5 files; null = the embedded synthetic dataset"),
    ("data.split", "split name (configs/splits) or split file; null = the dataset's own"),
    ("trainer.epochs", "epochs to train"),
    ("trainer.batch_size", "windows per batch of one device"),
    ("trainer.devices", "devices to train on: N or auto (all GPUs)"),
    ("trainer.strategy", "auto | one_device | mirrored | multi_worker | data_parallel"),
    ("trainer.window_length", "samples per training window (+ trainer.padding of context)"),
    ("optimizer.learning_rate", "peak learning rate"),
    ("trainer.mixed_precision", "false | true | mixed_bfloat16"),
    ("trainer.jit_compile", "XLA compilation: true | false | auto (on under JAX only)"),
    ("model.<hyperparameter>", "any hyperparameter in configs/model/<family>.yaml"),
)


def _parser():
    from emgtf import config as config_lib

    keys = [*config_lib.top_level_keys("fit"), *COMMON_KEYS]
    width = max(len(k) for k, _ in keys)
    return CommandParser(
        prog=PROG,
        description="Train a model on EMG session files, validating greedy CER every epoch; then "
        "evaluate the best checkpoint on the test split.",
        epilog=(
            "config groups (choose with group=option; files in configs/<group>/):\n"
            + config_lib.describe_groups("fit")
            + "\n\nkeys (set with key=value, Hydra override syntax):\n"
            + "\n".join(f"  {k:<{width}}  {c}" for k, c in keys)
            + "\n\nexamples:\n"
            "  python -m emgtf.fit\n"
            "  python -m emgtf.fit model=tds_conv_ctc trainer.epochs=30\n"
            "  python -m emgtf.fit data=user_89335547 data.root=/data/emg2qwerty trainer=reference\n"
            "  python -m emgtf.fit resume=true run_dir=runs/20250101-120000-rnn\n"
            "  python -m emgtf.fit --dry-run trainer=reference"
        ),
    )


def _name(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _is_key(override: str, *keys: str) -> bool:
    return _name(override) in keys


def _is_hyperparameter(override: str) -> bool:
    return _name(override).startswith("model.")


def load_config(overrides: list[str]):
    """The run's config: composed from configs/, or, for ``resume=true``, the run's saved
    config.yaml with the other overrides applied."""
    from emgtf import config as config_lib

    # model.* hyperparameters may belong to the checkpoint's family, not yet chosen: the first
    # composition only reads checkpoint= and resume=.
    cfg = config_lib.compose("fit", [o for o in overrides if not _is_hyperparameter(o)])
    if not cfg.resume:
        with_model = list(overrides)
        if cfg.checkpoint is not None:
            # Fine-tuning (checkpoint=generic.keras): the model family is the checkpoint's unless
            # model=... says otherwise, so Meta's converted model needs no model=tds_conv_ctc.
            from emgtf.inference.checkpoints import checkpoint_model_overrides

            with_model = checkpoint_model_overrides(overrides, cfg.checkpoint)
        return config_lib.compose("fit", with_model)
    if cfg.run_dir is None:
        raise EmgtfError("resume=true needs run_dir=<the folder of the run to continue>")
    run_dir = Path(str(cfg.run_dir)).expanduser()
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise EmgtfError(f"resume=true: {run_dir} has no config.yaml (not an emgtf run folder?)")
    rest = [o for o in overrides if not _is_key(o, "resume", "run_dir")]
    from emgtf.training.config_checks import check_run_config

    saved_cfg = config_lib.load_saved(saved)
    check_run_config(saved_cfg, saved)  # a damaged or foreign file: one line, not a KeyError later
    cfg = config_lib.apply_overrides(saved_cfg, rest)
    cfg.resume = True
    cfg.run_dir = str(run_dir)
    return cfg


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)

    from emgtf import config as config_lib

    cfg = load_config(args.overrides)
    if args.dry_run:
        print(config_lib.to_yaml(cfg), end="")
        return 0

    from emgtf.decoding import make_decoder
    from emgtf.inference.evaluation import evaluate_checkpoint
    from emgtf.training import train

    make_decoder(cfg.decoder)  # a bad decoder option or a missing LM fails now, not after training
    result = train(cfg, log=console_log("emgtf.fit"))
    if not result.chief:
        return 0  # another host of a cluster: the chief writes the run folder and evaluates
    if result.best_checkpoint is None:
        print("emgtf.fit: no best checkpoint to evaluate", file=sys.stderr)
        return 0
    from emgtf.data.splits import TEST

    if not result.test_sessions:
        print(f"emgtf.fit: split {result.split} has no test sessions; skipping the test evaluation")
        return 0
    print()
    evaluate_checkpoint(
        result.best_checkpoint,
        part=TEST,
        decoder_cfg=cfg.decoder,
        root=None if result.data_root is None else str(result.data_root),
        split=result.split,
        overwrite=True,  # the run's own report: a resumed run re-evaluates its new best
        log=console_log("emgtf.evaluate"),  # the test evaluation speaks as the evaluate command would
    )
    return 0

