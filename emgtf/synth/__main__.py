"""``python -m emgtf.synth``: see ``emgtf.cli.synth``."""

import sys

from emgtf.cli import run
from emgtf.cli.synth import main

if __name__ == "__main__":
    sys.exit(run(main, "emgtf.synth"))
