"""The local stack: real redis-server, Gunicorn nodes and nginx on 127.0.0.1, as one unit.

`abacus-stack` (abacus/cli/stack.py) is its command line; the tests use `LocalStack` directly,
on free ports.
"""

from abacus.local_stack.errors import StackError
from abacus.local_stack.stack import LocalStack, StackConfig

__all__ = ["LocalStack", "StackConfig", "StackError"]
