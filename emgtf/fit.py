"""``python -m emgtf.fit``: see ``emgtf.cli.fit``."""

import sys

from emgtf.cli import run
from emgtf.cli.fit import main

if __name__ == "__main__":
    sys.exit(run(main, "emgtf.fit"))
