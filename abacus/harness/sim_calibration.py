"""Measuring what the commit simulation needs from Redis, on a redis-server of its own.

One client, nothing else running: the loopback round trip of a PING, and for batches of k adds
the work of the commit path's two round trips (`ledger.attempt`'s exact commands), from Redis's
side. Redis's work is its main thread's CPU time (/proc/<pid>/task/<pid>/schedstat), measured with
`appendfsync no` so that no disk wait is in it, which makes it independent of whatever else the
machine runs; the fsync of `appendfsync always` is then the difference in wall time of round trip
2 between `always` and `no`. Every fixed + per-add figure is a least-squares line over k.

The Redis is started with the project's abacus/conf/redis.conf on a free port in a temporary
directory, and stopped by its pid.
"""

from __future__ import annotations

import os
import signal
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from abacus.harness.resp_wire import Wire
from abacus.harness.sim_params import Linear
from abacus.local_stack import binaries, processes, redis_server
from abacus.local_stack.ports import free_ports
from abacus.node import resp

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SUM_KEY = "sim:sum"
# A stored record's size: a commit id, then the add's response (records.committed).
RECORD = "p0f3a9c2e1b7d4f6-000001\n" + (
    '{"new_sum": 1234567, "added": 1, "timestamp": "2026-01-01T00:00:00.000000+00:00", '
    '"node_id": "node-1"}'
)
RECORD_TTL_S = 64


@dataclass(frozen=True)
class RedisFigures:
    rtt_s: float
    read: Linear
    commit: Linear
    discarded: Linear
    fsync: Linear
    # Per batch size: medians and CPU, for the file's readers.
    table: list[dict[str, float]]


@contextmanager
def own_redis(directory: Path) -> Iterator[tuple[processes.Process, int]]:
    """redis-server with the project's configuration on a free port; stopped by its pid."""
    binary = binaries.require("redis-server")
    (port,) = free_ports(1)
    data = directory / "redis"
    data.mkdir(parents=True, exist_ok=True)
    log = directory / "redis.log"
    argv = redis_server.command(binary, port, data)
    process = processes.spawn("redis", argv, log, dict(os.environ), directory)
    try:
        redis_server.wait_ready(f"redis://127.0.0.1:{port}/0", process, log)
        yield process, port
    finally:
        processes.stop(process, signal.SIGTERM, 10.0)


def thread_cpu_s(pid: int, tid: int | None = None) -> float:
    """CPU seconds a thread has run (the scheduler's nanoseconds, not clock ticks)."""
    stat = Path(f"/proc/{pid}/task/{tid or pid}/schedstat").read_text()
    return int(stat.split()[0]) / 1e9


def _read(k: int) -> list[resp.Command]:
    keys = [f"sim:op:read:{i}" for i in range(k)]
    return [("WATCH", SUM_KEY), ("GET", SUM_KEY), ("MGET", *keys)]


def _commit(k: int) -> list[resp.Command]:
    sets: list[resp.Command] = [
        ("SET", f"sim:op:write:{i}", RECORD, "EX", RECORD_TTL_S) for i in range(k)
    ]
    return [("MULTI",), ("SET", SUM_KEY, "1234567"), *sets, ("EXEC",)]


@dataclass
class _Step:
    wire: Wire
    payload: bytes
    reply_bytes: int
    timed: bool

    @classmethod
    def of(cls, wire: Wire, commands: list[resp.Command], *, timed: bool) -> _Step:
        return cls(wire, resp.pack(commands), len(wire.call(commands)), timed)


def _loop(steps: list[_Step], reps: int, cpu: Callable[[], float]) -> tuple[list[float], float]:
    """Run the steps `reps` times: the median wall time of each timed step, and Redis's CPU
    seconds per repetition of the whole loop."""
    walls: list[list[float]] = [[] for _ in steps]
    before = cpu()
    for _ in range(reps):
        for i, step in enumerate(steps):
            seconds = step.wire.timed(step.payload, step.reply_bytes)
            if step.timed:
                walls[i].append(seconds)
    spent = (cpu() - before) / reps
    return [statistics.median(w) for w in walls if w], spent


def measure_redis(pid: int, port: int, reps: int = 300, fsync_reps: int = 100) -> RedisFigures:
    a, b = Wire(port), Wire(port)
    try:
        return _measure(a, b, lambda: thread_cpu_s(pid), reps, fsync_reps)
    finally:
        a.close()
        b.close()


def _measure(
    a: Wire, b: Wire, cpu: Callable[[], float], reps: int, fsync_reps: int
) -> RedisFigures:
    a.call([("CONFIG", "SET", "appendfsync", "no")])
    unwatch = _Step.of(a, [("UNWATCH",)], timed=False)
    (ping_wall,), ping_cpu = _loop([_Step.of(a, [("PING",)], timed=True)], reps * 4, cpu)
    table: list[dict[str, float]] = []
    for k in BATCH_SIZES:
        read = _Step.of(a, _read(k), timed=True)
        (read_wall,), read_loop = _loop([read, unwatch], reps, cpu)
        read_cpu = read_loop - ping_cpu
        commit = _Step.of(a, _commit(k), timed=True)
        (_, commit_wall), commit_loop = _loop([read, commit], reps, cpu)
        # Another client's write between the WATCH and the EXEC: the EXEC is discarded.
        touch = _Step.of(b, [("SET", SUM_KEY, "1234567")], timed=False)
        a.call(_read(k))
        b.call([("SET", SUM_KEY, "1234567")])
        discarded = _Step.of(a, _commit(k), timed=True)
        (_, disc_wall), disc_loop = _loop([read, touch, discarded], reps, cpu)
        a.call([("CONFIG", "SET", "appendfsync", "always")])
        (_, synced_wall), _ = _loop([read, commit], fsync_reps, cpu)
        a.call([("CONFIG", "SET", "appendfsync", "no")])
        table.append(
            {
                "k": k,
                "read_cpu_s": read_cpu,
                "commit_cpu_s": commit_loop - read_cpu,
                # The other client's SET costs Redis about what a PING does.
                "discarded_cpu_s": disc_loop - read_cpu - ping_cpu,
                "read_wall_s": read_wall,
                "commit_wall_s": commit_wall,
                "discarded_wall_s": disc_wall,
                "commit_wall_fsync_s": synced_wall,
                "fsync_s": max(0.0, synced_wall - commit_wall),
            }
        )
    a.call([("CONFIG", "SET", "appendfsync", "always")])

    def line(name: str) -> Linear:
        return Linear.fit([(int(row["k"]), row[name]) for row in table])

    return RedisFigures(
        rtt_s=max(0.0, ping_wall - ping_cpu),
        read=line("read_cpu_s"),
        commit=line("commit_cpu_s"),
        discarded=line("discarded_cpu_s"),
        fsync=line("fsync_s"),
        table=table,
    )
