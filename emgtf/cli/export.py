"""``python -m emgtf.export checkpoint=PATH out=DIR [format=saved_model|keras|onnx|tflite] [streaming=true]``

Writes a model that other programs run on raw EMG, with ``export.json`` beside it (see
``emgtf.export``).
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
        ".keras file, ONNX or a TFLite streaming step, with export.json (charset, sample rate, frame "
        "and emission rules).",
        epilog=(
            "overrides (Hydra syntax, key=value):\n" + keys + "\n\nexamples:\n"
            "  python -m emgtf.export checkpoint=runs/X/best.keras out=exports/X\n"
            "  python -m emgtf.export checkpoint=runs/X/best.keras format=onnx out=exports/X-onnx\n"
            "  python -m emgtf.export checkpoint=runs/X/best.keras streaming=true out=exports/X-stream\n"
            "  python -m emgtf.export checkpoint=runs/X/best.keras format=tflite out=exports/X-tflite"
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
    for key in ("streaming", "verify"):
        if not isinstance(cfg[key], bool):
            raise EmgtfError(f"{key} must be true or false, got {cfg[key]!r}")
    doc = export_checkpoint(
        str(cfg.checkpoint), str(cfg.out), str(cfg.format), onnx_opset=opset, verify=cfg.verify,
        streaming=cfg.streaming, stream_chunk_samples=cfg.stream_chunk_samples,
        tflite_int8=cfg.tflite_int8,
    )
    check = doc.get("verification")
    checked = (
        f"; matches the checkpoint within {check['max_abs_log_prob_difference']:.2g}" if check else ""
    )
    print(
        f"emgtf.export: {doc['family']} ({doc['parameters']:,} parameters) -> {cfg.out} "
        f"[{cfg.format}], emissions = {doc['emission']['emissions']}{checked}"
    )
    if doc.get("streaming"):
        step = doc["streaming"]
        print(f"streaming step: {step['chunk_samples']} samples -> {step['frames_per_step']} emissions, "
              f"state of {step['state_size']} floats, first {step['warmup_emissions']} outputs are warm-up")
    cost = (doc.get("tflite") or {}).get("int8_accuracy_cost")
    if cost:
        print(f"int8 ({doc['tflite']['int8']['mode']}): largest log-probability difference "
              f"{cost['int8_max_abs_log_prob_difference']:.3g}, "
              f"greedy CER {cost['greedy_cer']['int8']:.2f} % against {cost['greedy_cer']['keras']:.2f} % "
              "(float Keras) on a generated session")
    return 0

