"""``python -m emgtf.export checkpoint=PATH out=DIR [format=saved_model|keras|onnx]``

Writes a model that other programs run on raw EMG, with ``export.json`` beside it (see
:mod:`emgtf.export`).
"""

from __future__ import annotations


from emgtf.cli.parsing import CommandParser
from emgtf.errors import EmgtfError

PROG = "python -m emgtf.export"


def _parser():
    from emgtf import config as config_lib

    keys = "\n".join(f"  {k:<12} {c}" for k, c in config_lib.top_level_keys("export"))
    return CommandParser(
        prog=PROG,
        description="Export a checkpoint as a TensorFlow SavedModel (TensorFlow alone loads it), a "
        ".keras file or ONNX, with export.json (charset, sample rate, frame and emission rules).",
        epilog=(
            "overrides (Hydra syntax, key=value):\n" + keys + "\n\nexamples:\n"
            "  python -m emgtf.export checkpoint=runs/X/best.keras out=exports/X\n"
            "  python -m emgtf.export checkpoint=runs/X/best.keras format=onnx out=exports/X-onnx"
        ),
    )


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)

    from emgtf import config as config_lib

    cfg = config_lib.compose("export", args.overrides)
    if args.dry_run:
        print(config_lib.to_yaml(cfg), end="")
        return 0
    config_lib.check_complete(cfg, "export")
    from emgtf.export import FORMATS, export_checkpoint

    if cfg.format not in FORMATS:
        raise EmgtfError(f"format must be one of {', '.join(FORMATS)}, got {cfg.format!r}")
    opset = cfg.onnx_opset
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 7:
        raise EmgtfError(f"onnx_opset must be an integer >= 7 (tf2onnx's oldest), got {opset!r}")
    doc = export_checkpoint(
        str(cfg.checkpoint), str(cfg.out), str(cfg.format), onnx_opset=opset, verify=bool(cfg.verify)
    )
    check = doc.get("verification")
    checked = (
        f"; matches the checkpoint within {check['max_abs_log_prob_difference']:.2g}" if check else ""
    )
    print(
        f"emgtf.export: {doc['family']} ({doc['parameters']:,} parameters) -> {cfg.out} "
        f"[{cfg.format}], emissions = {doc['emission']['emissions']}{checked}"
    )
    return 0

