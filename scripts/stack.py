"""`python scripts/stack.py`: a thin wrapper of abacus.cli.stack.

Installed (`pip install .`), the same is the command `abacus-stack`."""

import sys

from abacus.cli.stack import main

if __name__ == "__main__":
    sys.exit(main())
