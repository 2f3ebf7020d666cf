"""``python -m emgtf.download``: see ``emgtf.cli.download``."""

import sys

from emgtf.cli import run
from emgtf.cli.download import main

if __name__ == "__main__":
    sys.exit(run(main, "emgtf.download"))
