"""``python -m emgtf.evaluate checkpoint=PATH [split=test|val] [decoder=greedy|beam|beam_lm]``

Decodes every session of a split whole and prints CER, IER, DER and SER per session and over the
split; writes the JSON report beside the checkpoint (see :mod:`emgtf.inference.evaluation`).

The data root and split default to those in the ``config.yaml`` beside the checkpoint (a run
folder), else to the embedded synthetic dataset; ``data.root=...`` and ``data.split=...`` choose
others. Options: ``python -m emgtf.evaluate --help``.
"""

from __future__ import annotations


from emgtf.cli.parsing import CommandParser
from emgtf.errors import EmgtfError

PROG = "python -m emgtf.evaluate"


def _parser():
    from emgtf import config as config_lib

    keys = "\n".join(f"  {k:<12} {c}" for k, c in config_lib.top_level_keys("evaluate"))
    return CommandParser(
        prog=PROG,
        description="Evaluate a checkpoint on whole sessions (batch 1): CER, IER, DER, SER per "
        "session and overall; writes <checkpoint stem>.<split>.<decoder>.eval.json beside it.",
        epilog=(
            "overrides (Hydra syntax, key=value):\n" + keys
            + "\n  data.root    data folder (default: the run's config.yaml, else the synthetic dataset)"
            + "\n  data.split   split name or file (same default)\n\nconfig groups:\n"
            + config_lib.describe_groups("evaluate", ("decoder",))
            + "\n\nexample: python -m emgtf.evaluate checkpoint=runs/X/best.keras split=val decoder=beam"
        ),
    )


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)

    from emgtf import config as config_lib

    cfg = config_lib.compose("evaluate", args.overrides)
    if args.dry_run:
        print(config_lib.to_yaml(cfg), end="")
        return 0
    config_lib.check_complete(cfg, "evaluate")
    if cfg.split not in ("train", "val", "test"):
        raise EmgtfError(f"split must be test, val or train, got {cfg.split!r}")
    from emgtf.inference.evaluation import evaluate_checkpoint

    evaluate_checkpoint(
        cfg.checkpoint,
        part=cfg.split,
        decoder_cfg=cfg.decoder,
        root=cfg.data.root,
        split=cfg.data.split,
        output=cfg.output,
        overwrite=bool(cfg.overwrite),
    )
    return 0

