"""``python -m emgtf.evaluate checkpoint=PATH [split=test|val] [decoder=greedy|beam|beam_lm]``

Decodes every session of a split whole (batch 1, no windowing: the reference's test protocol),
prints CER, IER, DER and SER per session and over the split (edit operations summed over all
sessions), and writes the report as JSON beside the checkpoint:
``<checkpoint stem>.<split>.<decoder>.eval.json``.

The data root and split default to those in the ``config.yaml`` beside the checkpoint (a run
folder), else to the embedded synthetic dataset; ``data.root=...`` and ``data.split=...`` choose
others. Options: ``python -m emgtf.evaluate --help``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from emgtf.cli import run
from emgtf.errors import EmgtfError

PROG = "python -m emgtf.evaluate"


def decoder_name(decoder_cfg) -> str:
    kind = str(decoder_cfg.get("kind", "greedy"))
    return f"{kind}_lm" if kind == "beam" and decoder_cfg.get("lm_path") else kind


def make_decoder(decoder_cfg):
    from emgtf.config import to_container
    from emgtf.decode import make_decoder as build

    options = to_container(decoder_cfg)
    kind = options.pop("kind", "greedy")
    return build(kind, **options)


def evaluate_model(model, files, decoder, *, log=print) -> dict:
    """Decodes each session file whole with ``model``; returns the per-session and overall rates.

    Returns ``{"sessions": [{"session", "CER", "IER", "DER", "SER", counts..., "prediction",
    "target"}], "overall": {"CER", ..., counts}}``.
    """
    from emgtf.callbacks import forward
    from emgtf.charset import charset
    from emgtf.data import data_errors, make_dataset
    from emgtf.metrics import ErrorCounter, error_rates
    from emgtf.models import emission_lengths

    cs = charset()
    overall = ErrorCounter()
    sessions = []
    dataset = make_dataset([str(f) for f in files], window_length=None, batch_size=1)
    with data_errors():
        for batch in dataset:
            log_probs = forward(model, batch["emg"])
            emitted = [min(int(emission_lengths(model, int(batch["emg_lengths"][0]))), log_probs.shape[1])]
            prediction = decoder.decode_batch(log_probs, emitted)[0]
            n = int(batch["label_lengths"][0])
            target = cs.labels_to_str(batch["labels"][0, :n].numpy())
            overall.update(prediction, target)
            name = batch["session"][0].numpy().decode()
            rates = error_rates([prediction], [target])
            sessions.append({"session": name, **rates, "prediction": prediction, "target": target})
            if log is not None:
                log(f"  {name}: CER {rates['CER']:.2f} % ({rates['target_chars']} characters)")
    return {"sessions": sessions, "overall": overall.result()}


def rates_table(report: dict) -> str:
    """Per-session and overall CER / IER / DER / SER as a fixed-width table."""
    rows = [(s["session"], s) for s in report["sessions"]] + [("overall", report["overall"])]
    width = max(12, *(len(name) for name, _ in rows))
    header = f"{'session':<{width}}  {'CER':>7}  {'IER':>7}  {'DER':>7}  {'SER':>7}  {'chars':>7}"
    lines = [header, "-" * len(header)]
    for i, (name, r) in enumerate(rows):
        if i == len(rows) - 1:
            lines.append("-" * len(header))
        lines.append(
            f"{name:<{width}}  {r['CER']:7.2f}  {r['IER']:7.2f}  {r['DER']:7.2f}  {r['SER']:7.2f}  "
            f"{r['target_chars']:7d}"
        )
    return "\n".join(lines)


def default_output(checkpoint: Path, part: str, decoder_cfg) -> Path:
    return checkpoint.with_name(f"{checkpoint.stem}.{part}.{decoder_name(decoder_cfg)}.eval.json")


def evaluate_checkpoint(
    checkpoint,
    *,
    part: str = "test",
    decoder_cfg=None,
    root=None,
    split=None,
    output=None,
    overwrite: bool = False,
    model=None,
) -> tuple[dict, Path]:
    """Evaluates ``checkpoint`` on split part ``part``; writes and returns the JSON report.

    ``root``/``split`` default to the run's config.yaml beside the checkpoint, else the synthetic
    default. ``model``: the already loaded checkpoint, to skip loading it again.
    """
    from omegaconf import OmegaConf

    from emgtf import config as config_lib
    from emgtf.data.splits import load_split
    from emgtf.training import checkpoint_family, load_checkpoint, resolve_data

    checkpoint = Path(checkpoint)
    family = checkpoint_family(checkpoint)  # a missing or foreign file fails before any data work
    decoder_cfg = decoder_cfg if decoder_cfg is not None else OmegaConf.create({"kind": "greedy"})
    if root is None or split is None:
        run_config = checkpoint.parent / "config.yaml"
        if run_config.is_file():
            run_data = config_lib.load_saved(run_config).get("data") or {}
            root = root if root is not None else run_data.get("root")
            split = split if split is not None else run_data.get("split")
    data_root, split_spec = resolve_data(OmegaConf.create({"root": root, "split": split}))
    files = load_split(split_spec, data_root).part(part)
    if not files:
        raise EmgtfError(f"split '{split_spec}' has no {part} sessions")
    output = Path(output) if output is not None else default_output(checkpoint, part, decoder_cfg)
    if output.exists() and not overwrite:
        raise EmgtfError(f"{output} exists; pass overwrite=true to replace it (or output=<another path>)")

    decoder = make_decoder(decoder_cfg)
    if model is None:
        model = load_checkpoint(checkpoint, family)
    print(f"emgtf.evaluate: {checkpoint} ({model.name}) on {len(files)} {part} session(s), "
          f"{decoder_name(decoder_cfg)} decoding", flush=True)
    report = evaluate_model(model, files, decoder)
    report = {
        "checkpoint": str(checkpoint),
        "model": model.name,
        "split": part,
        "split_file": str(split_spec),
        "data_root": str(data_root),
        "decoder": config_lib.to_container(decoder_cfg),
        "overall": report["overall"],
        "sessions": report["sessions"],
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, output)
    print(rates_table(report))
    print(f"report: {output}", flush=True)
    return report, output


def _parser():
    from emgtf import config as config_lib

    keys = "\n".join(f"  {k:<12} {c}" for k, c in config_lib.top_level_keys("evaluate"))
    return config_lib.CommandParser(
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


if __name__ == "__main__":
    sys.exit(run(main, "emgtf.evaluate"))
