"""``python -m emgtf.export``: see ``emgtf.cli.export``."""

import sys

from emgtf.cli import run
from emgtf.cli.export import main

if __name__ == "__main__":
    sys.exit(run(main, "emgtf.export"))
