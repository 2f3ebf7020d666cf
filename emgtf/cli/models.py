"""``python -m emgtf.models``: the model families, their size and output length at defaults."""

from __future__ import annotations

from emgtf.cli.parsing import ArgumentParser


def main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="python -m emgtf.models",
        description="List the model families with their trainable parameters at default settings.",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=10_000,
        help="input length for the 'frames out' column (default: 10000 = a 4 s training window "
        "with 1800 + 200 samples of context)",
    )
    args = parser.parse_args(argv)

    # Imported here so --help does not wait for TensorFlow.
    from emgtf import models

    rows = []
    for name in models.available():
        model = models.build(name)
        rows.append(
            (
                name,
                f"{models.trainable_parameters(model):,}",
                models.emission_rule(name),
                str(int(models.emission_lengths(model, args.samples))),
                models.description(name),
            )
        )
    header = ("family", "trainable params", "output frames", f"for {args.samples} samples", "")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(
        "frames = 1 + (samples - n_fft) // hop_length = 1 + (samples - 64) // 16 at defaults "
        "(2 kHz -> 125 frames/s)"
    )
    return 0

