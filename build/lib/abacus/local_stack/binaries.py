"""Finding the servers the stack runs, with the package to install when one is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

from abacus.local_stack.errors import StackError

PACKAGES = {
    "redis-server": "redis-server (apt-get install redis-server)",
    "nginx": "nginx-light (apt-get install nginx-light)",
}
# Debian puts nginx in /usr/sbin, which is not on every user's PATH.
EXTRA_DIRS = ("/usr/sbin", "/usr/local/sbin")


def find(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in EXTRA_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file():
            return str(candidate)
    return None


def require(name: str) -> str:
    found = find(name)
    if found is None:
        raise StackError(f"{name} is not installed; it comes with the package {PACKAGES[name]}")
    return found
