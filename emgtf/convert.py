"""``python -m emgtf.convert``: see ``emgtf.cli.convert``."""

import sys

from emgtf.cli import run
from emgtf.cli.convert import main

if __name__ == "__main__":
    sys.exit(run(main, "emgtf.convert"))
