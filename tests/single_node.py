"""One Gunicorn node of the project's configuration (abacus/node/gunicorn_conf.py), on its own (no
balancer, no Redis unless given one), for tests that talk to a node directly and look at its
processes and log."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abacus.local_stack import processes
from abacus.local_stack.ports import free_ports
from abacus.local_stack.processes import Process
from abacus.local_stack.stack import GUNICORN_CONF, NODE_STOP_TIMEOUT_S
from tests.waiting import wait_until

# The repository: the working directory of what a test starts, so that `tests.*` imports.
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Node:
    process: Process  # the Gunicorn master
    port: int
    log: Path

    def worker_pids(self) -> list[int]:
        """The master's children: its workers."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def log_records(self) -> list[dict[str, Any]]:
        """The node's JSON log lines (LOG_FORMAT=json), parsed."""
        records = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def serves(port: int) -> bool:
    """A worker accepts and answers on the port (any answer: without Redis /health is 503)."""
    from abacus.local_stack.stack import health_status  # noqa: PLC0415

    return health_status(port) is not None


@contextmanager
def single_node(directory: Path, *app: str, **env: str) -> Iterator[Node]:
    """A node with one worker on a free port; `app` overrides the configuration's app spec.
    Stopped (SIGTERM, as the stack does) when the block ends, unless the test stopped it."""
    redis_port, port = free_ports(2)
    log = directory / "node.log"
    node_env = {
        "PATH": "/usr/bin:/bin",
        "NODE_ID": "node-solo",
        "PORT": str(port),
        # Nothing listens there: a node starts and serves without Redis (/health says 503).
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "WEB_CONCURRENCY": "1",
        "LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(directory / "metrics"),
        **env,
    }
    argv = [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF, *app]
    process = processes.spawn("node-solo", argv, log, node_env, ROOT)
    node = Node(process, port, log)
    try:
        assert wait_until(lambda: serves(port), give_up=lambda: not processes.is_alive(process)), (
            f"the node did not start; see {log}"
        )
        yield node
    finally:
        processes.stop(process, signal.SIGTERM, NODE_STOP_TIMEOUT_S)
