"""``python -m emgtf.tune``: see ``emgtf.cli.tune``."""

import sys

from emgtf.cli import run
from emgtf.cli.tune import main

if __name__ == "__main__":
    sys.exit(run(main, "emgtf.tune"))
