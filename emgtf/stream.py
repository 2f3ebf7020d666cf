"""``python -m emgtf.stream``: see ``emgtf.cli.stream``."""

import sys

from emgtf.cli import run
from emgtf.cli.stream import main

if __name__ == "__main__":
    sys.exit(run(main, "emgtf.stream"))
