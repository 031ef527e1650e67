"""A local stack of a command's own (`make check`, `make nemesis`): on free ports, in a temporary
directory, so it never touches one you run; stopped as its state file says when the block ends
(a nemesis may have replaced parts of it)."""

from __future__ import annotations

import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from abacus.local_stack import LocalStack, StackConfig

# A throwaway stack needs a throwaway token: reset is how a check starts from 0.
TOKEN = secrets.token_hex(16)


@contextmanager
def throwaway_stack(prefix: str) -> Iterator[LocalStack]:
    """Raises StackError when the stack cannot start."""
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        config = StackConfig.on_free_ports(
            Path(directory), rate_limit=False, node_env={"ABACUS_ADMIN_TOKEN": TOKEN}
        )
        stack = LocalStack(config)
        try:
            print(f"starting a local stack at {config.url} ...", file=sys.stderr, flush=True)
            stack.up()
            yield stack
        finally:
            stack.down()
