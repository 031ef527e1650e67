"""`python scripts/calibrate.py`: a thin wrapper of abacus.cli.calibrate (`make calibrate`)."""

import sys

from abacus.cli.calibrate import main

if __name__ == "__main__":
    sys.exit(main())
