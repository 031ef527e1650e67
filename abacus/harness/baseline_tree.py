"""The nodes' code at another commit, for `bench_stacks.py --compare baseline`.

`git archive` writes the commit's `abacus/` into a temporary directory, and the nodes of the
baseline stack find it first on their PYTHONPATH: Python's path finder comes before the editable
install's finder, so they import that `abacus.node`, while the stack around them (nginx, Redis,
ports, this process) is this tree's. An archive rather than `git worktree add`: a run that is
killed leaves a temporary directory behind, not a worktree registered in the repository.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import abacus

# The repository this code runs from (an editable install or a checkout).
REPOSITORY = Path(abacus.__file__).resolve().parent.parent
PACKAGE = "abacus"


class BaselineError(Exception):
    """The baseline cannot be set up: no repository, an unknown ref, or imports from elsewhere."""


@dataclass(frozen=True)
class BaselineTree:
    ref: str
    commit: str
    path: Path  # holds the commit's abacus/ package

    def node_env(self) -> dict[str, str]:
        """The nodes' environment that makes them import this tree's package."""
        inherited = os.environ.get("PYTHONPATH")
        return {
            "PYTHONPATH": os.pathsep.join([str(self.path), *([inherited] if inherited else [])])
        }


@contextmanager
def checked_out(ref: str, repository: Path = REPOSITORY) -> Iterator[BaselineTree]:
    """The package at `ref`, in a temporary directory removed afterwards; checked to be what a
    process with `node_env()` imports."""
    commit = _git(repository, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    if not commit:
        raise BaselineError(f"{ref!r} names no commit in {repository}")
    archive = _git_bytes(repository, "archive", "--format=tar", commit, PACKAGE)
    with tempfile.TemporaryDirectory(prefix="abacus-baseline-") as directory:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(directory, filter="data")
        tree = BaselineTree(ref, commit, Path(directory).resolve())
        imported = imported_from(tree.node_env())
        if not imported.is_relative_to(tree.path):
            raise BaselineError(f"the baseline's nodes would import abacus.node from {imported}")
        yield tree


def imported_from(env: dict[str, str]) -> Path:
    """Where a node started with this extra environment (and from another directory than this
    repository, as the stack starts them) finds `abacus.node`."""
    probe = "import abacus.node.main as m; print(m.__file__)"
    with tempfile.TemporaryDirectory(prefix="abacus-probe-") as elsewhere:
        done = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            cwd=elsewhere,
            check=False,
        )
    if done.returncode != 0:
        raise BaselineError(f"the baseline's abacus.node does not import: {done.stderr.strip()}")
    return Path(done.stdout.strip()).resolve()


def _git(repository: Path, *args: str) -> str:
    return _git_bytes(repository, *args, allow_failure=True).decode()


def _git_bytes(repository: Path, *args: str, allow_failure: bool = False) -> bytes:
    try:
        done = subprocess.run(
            ["git", "-C", str(repository), *args],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        raise BaselineError("git is not installed") from None
    if done.returncode != 0 and not allow_failure:
        message = done.stderr.decode(errors="replace").strip()
        raise BaselineError(f"git {args[0]} failed in {repository}: {message}")
    return done.stdout
