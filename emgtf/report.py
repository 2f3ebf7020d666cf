"""``python -m emgtf.report``: see ``emgtf.cli.report``."""

import sys

from emgtf.cli import run
from emgtf.cli.report import main

if __name__ == "__main__":
    sys.exit(run(main, "emgtf.report"))
