"""`python scripts/nemesis_stack.py` (`make nemesis`): a thin wrapper of
abacus.cli.nemesis_stack."""

import sys

from abacus.cli.nemesis_stack import main

if __name__ == "__main__":
    sys.exit(main())
