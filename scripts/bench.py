"""`python scripts/bench.py`: a thin wrapper of abacus.cli.bench.

Installed (`pip install .`), the same is the command `abacus-bench`."""

import sys

from abacus.cli.bench import main

if __name__ == "__main__":
    sys.exit(main())
