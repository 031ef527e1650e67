"""`python scripts/render_kubernetes.py`: a thin wrapper of abacus.cli.render_kubernetes."""

import sys

from abacus.cli.render_kubernetes import main

if __name__ == "__main__":
    sys.exit(main())
