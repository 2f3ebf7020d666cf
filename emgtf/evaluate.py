"""``python -m emgtf.evaluate``: see ``emgtf.cli.evaluate``."""

import sys

from emgtf.cli import run
from emgtf.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(run(main, "emgtf.evaluate"))
