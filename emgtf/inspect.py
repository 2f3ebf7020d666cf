"""``python -m emgtf.inspect``: see ``emgtf.cli.inspect``."""

import sys

from emgtf.cli import run
from emgtf.cli.inspect import main

if __name__ == "__main__":
    sys.exit(run(main, "emgtf.inspect"))
