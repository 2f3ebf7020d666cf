"""``python -m emgtf.evaluate checkpoint=PATH [split=test|val] [decoder=greedy|beam|beam_lm]``

Decodes every session of a split whole and prints CER, IER, DER and SER per session and over the
split; writes the JSON report beside the checkpoint (see ``emgtf.inference.evaluation``).

The data root and split default to those in the ``config.yaml`` beside the checkpoint (a run
folder), else to the embedded synthetic dataset; ``data.root=...`` and ``data.split=...`` choose
others. Options: ``python -m emgtf.evaluate --help``.

With ``splits=[...]`` it is the multi-user table instead (``emgtf.inference.benchmark``):
``checkpoint=`` evaluated on every split's test sessions, or ``checkpoints=[...]`` paired with the
splits, each with every decoder of ``decoders=[greedy,beam_lm]``.
"""

from __future__ import annotations


from emgtf.cli.parsing import CommandParser
from emgtf.console import console_log
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
            + "\n  data.split   split name or file (same default)"
            + "\n\nthe multi-user table (per-user rates on each split's test sessions, mean +/- std over users):"
            + "\n  splits       [split files], one per user (Meta's config/user/*.yaml or emgtf's format)"
            + "\n  checkpoints  [.keras files] paired with splits (else checkpoint= for every split)"
            + "\n  decoders     [decoder options], e.g. [greedy,beam_lm] (decoder.<key>=... applies where it fits)"
            + "\n\nconfig groups:\n"
            + config_lib.describe_groups("evaluate", ("decoder",))
            + "\n\nexamples:\n  python -m emgtf.evaluate checkpoint=runs/X/best.keras split=val decoder=beam"
            + "\n  python -m emgtf.evaluate checkpoint=generic.keras data.root=/data/emg2qwerty "
            "splits=[emg2qwerty/config/user/user0.yaml,emg2qwerty/config/user/user1.yaml] decoders=[greedy,beam_lm]"
        ),
    )


def _check_part(part) -> None:
    from emgtf.data.splits import PARTS

    if part not in PARTS:
        raise EmgtfError(f"split must be {', '.join(PARTS)}, got {part!r}")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)

    from emgtf import config as config_lib

    given = [_table_key(o) for o in args.overrides]
    overrides = given
    if any(_key(o) == "table.decoders" for o in given):
        # decoder.<key> overrides belong to the options in decoders= (decoder_configs), not to
        # the default decoder group, which may lack the key (greedy has no lm_path).
        overrides = [o for o in overrides if not _key(o).startswith("decoder.")]
    cfg = config_lib.compose("evaluate", overrides)
    if args.dry_run:
        print(config_lib.to_yaml(cfg), end="")
        return 0
    if cfg.table.splits is not None:
        return _benchmark(cfg, given)
    config_lib.check_complete(cfg, "evaluate")
    _check_part(cfg.split)
    from emgtf.inference.chunked import Chunking
    from emgtf.inference.evaluation import evaluate_checkpoint

    evaluate_checkpoint(
        cfg.checkpoint,
        part=cfg.split,
        decoder_cfg=cfg.decoder,
        root=cfg.data.root,
        split=cfg.data.split,
        output=cfg.output,
        overwrite=bool(cfg.overwrite),
        report=_flag(cfg, "report"),
        report_session=cfg.report_session,
        report_seconds=cfg.report_seconds,
        report_start=cfg.report_start,
        metrics=cfg.metrics,
        chunking=Chunking.from_config(cfg.get("chunk")),
        log=console_log("emgtf.evaluate"),
    )
    return 0


def _flag(cfg, key: str) -> bool:
    value = cfg.get(key)
    if not isinstance(value, bool):
        raise EmgtfError(f"{key} must be true or false, got {value!r}")
    return value



TABLE_KEYS = ("checkpoints", "splits", "decoders")


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _table_key(override: str) -> str:
    """``splits=...`` as ``table.splits=...`` (and checkpoints=, decoders=): the short forms."""
    return f"table.{override}" if _key(override) in TABLE_KEYS and override[:1] not in "+~" else override


def _list(cfg, key: str) -> list[str]:
    value = cfg.table.get(key)
    if isinstance(value, str):
        return [value]
    from omegaconf import ListConfig

    if not isinstance(value, ListConfig) or not len(value):
        raise EmgtfError(f"{key} must be a non-empty list, e.g. {key}=[a,b]")
    return [str(v) for v in value]


def _benchmark(cfg, overrides: list[str]) -> int:
    from omegaconf import OmegaConf

    from emgtf.inference.benchmark import decoder_configs, run_benchmark

    splits = _list(cfg, "splits")
    if cfg.table.checkpoints is not None:
        if not OmegaConf.is_missing(cfg, "checkpoint"):
            raise EmgtfError("give checkpoint= (one model for every split) or checkpoints= (one per split), not both")
        checkpoints = _list(cfg, "checkpoints")
        if len(checkpoints) != len(splits):
            raise EmgtfError(f"checkpoints has {len(checkpoints)} entries and splits {len(splits)}; "
                             "they are paired, so give one checkpoint per split")
    elif OmegaConf.is_missing(cfg, "checkpoint"):
        raise EmgtfError("splits= needs checkpoint=PATH (one model for every split) or checkpoints=[...]")
    else:
        checkpoints = [str(cfg.checkpoint)] * len(splits)
    if cfg.data.split is not None:
        raise EmgtfError("data.split does not apply with splits=[...]; list every split in splits")
    _check_part(cfg.split)
    run_benchmark(
        list(zip(checkpoints, splits)),
        [cfg.decoder] if cfg.table.decoders is None else decoder_configs(_list(cfg, "decoders"), overrides),
        root=cfg.data.root,
        part=cfg.split,
        output=cfg.output,
        overwrite=bool(cfg.overwrite),
        metrics=cfg.metrics,
        log=console_log("emgtf.evaluate"),
    )
    return 0
