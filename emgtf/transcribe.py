"""``python -m emgtf.transcribe``: see ``emgtf.cli.transcribe``."""

import sys

from emgtf.cli import run
from emgtf.cli.transcribe import main

if __name__ == "__main__":
    sys.exit(run(main, "emgtf.transcribe"))
