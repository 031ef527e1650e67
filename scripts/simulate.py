"""`python scripts/simulate.py`: a thin wrapper of abacus.cli.simulate (`make simulate`)."""

import sys

from abacus.cli.simulate import main

if __name__ == "__main__":
    sys.exit(main())
