"""`python scripts/bench_stacks.py`: a thin wrapper of abacus.cli.bench_stacks."""

import sys

from abacus.cli.bench_stacks import main

if __name__ == "__main__":
    sys.exit(main())
