"""`python scripts/check_consistency.py`: a thin wrapper of abacus.cli.check_consistency.

Installed (`pip install .`), the same is the command `abacus-check`."""

import sys

from abacus.cli.check_consistency import main

if __name__ == "__main__":
    sys.exit(main())
