"""`python scripts/check_stack.py`: a thin wrapper of abacus.cli.check_stack."""

import sys

from abacus.cli.check_stack import main

if __name__ == "__main__":
    sys.exit(main())
