"""``python -m emgtf.personalize``: see ``emgtf.cli.personalize``."""

import sys

from emgtf.cli import run
from emgtf.cli.personalize import main

if __name__ == "__main__":
    sys.exit(run(main, "emgtf.personalize"))
