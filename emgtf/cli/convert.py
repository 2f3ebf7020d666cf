"""``python -m emgtf.convert SRC OUT.keras``: one of Meta's emg2qwerty checkpoints, or one of
SplashNet's, as a .keras file.

SRC is a PyTorch Lightning ``.ckpt`` as Meta and SplashNet release them (reading it needs torch:
``pip install "emgtf[torch]"``) or braindecode's ``.safetensors``. OUT is written once, never
over an existing file, and works with ``python -m emgtf.evaluate``, ``transcribe`` and
``export``. The work is ``emgtf.converters.convert``.
"""

from __future__ import annotations

import math

from emgtf.cli.parsing import ArgumentParser


def main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="python -m emgtf.convert",
        description="Convert one of Meta's emg2qwerty checkpoints (.ckpt or .safetensors) or "
        "SplashNet's (.ckpt) into an emgtf .keras file.",
    )
    parser.add_argument("src", metavar="SRC", help="Meta's or SplashNet's .ckpt, or braindecode's .safetensors, or the name of a downloaded one "
                        "(meta/generic, splashnet/splashnet-mini: emgtf download checkpoints)")
    parser.add_argument(
        "out", metavar="OUT.keras", help="the .keras file to write (must not exist)"
    )
    args = parser.parse_args(argv)

    # Imported here so --help does not wait for TensorFlow.
    from emgtf.converters import convert

    from emgtf.fetch.published import resolve_path  # a published name (meta/generic): its download

    model = convert(str(resolve_path(args.src)), args.out)
    parameters = sum(math.prod(w.shape) for w in model.trainable_weights)
    print(f"emgtf.convert: {model.name}, {parameters:,} trainable parameters -> {args.out}")
    return 0

