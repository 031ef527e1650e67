"""`python scripts/bench_lanes.py`: a thin wrapper of abacus.cli.bench_lanes."""

import sys

from abacus.cli.bench_lanes import main

if __name__ == "__main__":
    sys.exit(main())
