"""``python -m emgtf <command>``: the same as the ``emgtf`` console script."""

import sys

from emgtf.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
