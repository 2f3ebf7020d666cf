"""``python -m emgtf.replay``: see ``emgtf.cli.replay``."""

import sys

from emgtf.cli import run
from emgtf.cli.replay import main

if __name__ == "__main__":
    sys.exit(run(main, "emgtf.replay"))
