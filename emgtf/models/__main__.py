"""``python -m emgtf.models``: see ``emgtf.cli.models``."""

import sys

from emgtf.cli import run
from emgtf.cli.models import main

if __name__ == "__main__":
    sys.exit(run(main, "emgtf.models"))
