"""Measuring a node worker's CPU per add and per attempt, for the commit simulation.

Two measurements, both CPU time rather than wall time, so that the two cores this machine shares
with the load generator and Redis do not inflate them:

- a real Gunicorn node with one worker, against the calibration's own Redis, driven by keep-alive
  HTTP clients at concurrency 1 (every add its own attempt) and at a higher concurrency (batches):
  the worker's CPU (/proc schedstat of all its threads) per add, and Redis's count of EXECs per
  add, at the two points give the cost of a request and the cost of an attempt;
- in process, `ledger._plan` and the packing of round trip 2 for batches of k adds: the part of an
  attempt repeated for every add it carries, which a retry pays again.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import redis

from abacus import conf
from abacus.harness.sim_params import Linear
from abacus.local_stack import processes
from abacus.local_stack.ports import free_ports
from abacus.local_stack.stack import health_status
from abacus.node import ledger, records, resp
from abacus.node.pending_add import PendingAdd

ADD_BODY = b'{"number": 1}'
PLAN_SIZES = (1, 8, 32, 128)


@dataclass(frozen=True)
class NodeFigures:
    request_s: float
    attempt_s: float
    attempt_add_s: float
    # (concurrency, CPU seconds per add, attempts per add) of each run, for the file's readers.
    runs: list[tuple[int, float, float]]


def plan_cost(reps: int = 200) -> Linear:
    """CPU seconds of planning and packing an attempt, as a line over its batch size."""
    return asyncio.run(_plan_cost(reps))


async def _plan_cost(reps: int) -> Linear:
    loop = asyncio.get_running_loop()
    points: list[tuple[float, float]] = []
    for k in PLAN_SIZES:
        adds = [
            PendingAdd(Decimal(1), f"sim:op:{i}", 64, loop.time() + 60, loop.create_future())
            for i in range(k)
        ]
        found: list[bytes | None] = [None] * k
        started = time.process_time()
        for _ in range(reps):
            plan = ledger._plan(Decimal(100), adds, found, "node-1", ledger.AttemptResult())
            commands: list[resp.Command] = [("MULTI",), ("SET", "sum", str(plan.total))]
            commands += [
                ("SET", a.record_key, records.committed(a.commit_id, body), "EX", 64)
                for a, body in plan.applies
            ]
            resp.pack(commands)
        points.append((k, (time.process_time() - started) / reps))
    return Linear.fit(points)


@contextmanager
def one_node(redis_port: int, directory: Path) -> Iterator[tuple[int, int]]:
    """A Gunicorn node with one worker on a free port: (its port, its worker's pid)."""
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "NODE_ID": "node-calibration",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "WEB_CONCURRENCY": "1",
        "LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(directory / "metrics"),
    }
    (directory / "metrics").mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "gunicorn", "-c", conf.GUNICORN_CONFIG]
    node = processes.spawn("node", argv, directory / "node.log", env, directory)
    try:
        deadline = time.monotonic() + 30
        while health_status(port, timeout=1.0) != 200:
            if time.monotonic() > deadline or not processes.is_alive(node):
                raise RuntimeError(f"the node did not start; see {directory / 'node.log'}")
            time.sleep(0.1)
        children = Path(f"/proc/{node.pid}/task/{node.pid}/children").read_text().split()
        yield port, int(children[0])
    finally:
        processes.stop(node, 15, 30.0)


def process_cpu_s(pid: int) -> float:
    """CPU seconds of all of a process's threads."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def _drive(port: int, concurrency: int, adds: int) -> None:
    """`adds` adds from `concurrency` keep-alive clients, as fast as the node answers."""
    left = [adds]
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json", "Host": "127.0.0.1"}
        try:
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                connection.request("POST", "/abacus/number", ADD_BODY, headers)
                answer = connection.getresponse()
                answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"add answered {answer.status}")
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _execs(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_exec", {}).get("calls", 0))


def measure_node(
    redis_port: int,
    attempt_add_s: float,
    points: tuple[tuple[int, int], ...] = ((4, 1500), (16, 3000), (64, 4000)),
    rounds: int = 3,
) -> NodeFigures:
    """`points`: (concurrency, adds) of the runs, each run `rounds` times. Concurrency 1 is left
    out by default: an idle event loop pays for wake-ups a loaded one shares between requests."""
    client = redis.Redis(port=redis_port)
    runs: list[tuple[int, float, float]] = []
    with tempfile.TemporaryDirectory() as scratch, one_node(redis_port, Path(scratch)) as node:
        port, worker = node
        _drive(port, 4, 200)  # warm-up: imports, connections, caches
        for concurrency, adds in points:
            tries = []
            for _ in range(rounds):
                cpu, execs = process_cpu_s(worker), _execs(client)
                _drive(port, concurrency, adds)
                cpu_per_add = (process_cpu_s(worker) - cpu) / adds
                tries.append((cpu_per_add, (_execs(client) - execs) / adds))
            # Other load on the machine only ever adds CPU time (caches, sibling threads).
            cpu_per_add, attempts_per_add = min(tries)
            runs.append((concurrency, cpu_per_add, attempts_per_add))
    client.close()
    # CPU per add = request + attempt_add + attempt x attempts per add: a line over the runs.
    line = Linear.fit([(apa, cpu) for _, cpu, apa in runs])
    attempt_s = line.per_add
    request_s = max(0.0, line.fixed - attempt_add_s)
    return NodeFigures(request_s, attempt_s, attempt_add_s, runs)
