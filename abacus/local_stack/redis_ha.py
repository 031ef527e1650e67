"""The local stack's replicated Redis (`abacus-stack up --redis-ha`): a primary, two replicas and
three Sentinels, all real `redis-server` processes on 127.0.0.1 (Sentinel is the same binary's
`--sentinel` mode).

Every data instance runs the shared abacus/conf/redis.conf, through a file of its own in the
stack's directory that includes it and adds what differs (port, directory, its primary) and what
the replicated mode sets on every instance (`min-replicas-to-write`: Sentinel copies no
configuration when it promotes a replica, so each must have it already). A file of its own,
because Sentinel rewrites the configuration of each instance it reconfigures (CONFIG REWRITE),
and would otherwise rewrite the shared file. Each Sentinel's file is written the same way:
its port and what it monitors, then the shared abacus/conf/sentinel.conf.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import redis

from abacus import conf
from abacus.local_stack import binaries, processes
from abacus.local_stack.errors import StackError
from abacus.local_stack.processes import Process
from abacus.node.settings import DEFAULT_SENTINEL_MASTER

MASTER = DEFAULT_SENTINEL_MASTER
INSTANCES = 3
SENTINELS = 3
# Sentinels that must agree the primary is down before one of them may fail over (a majority of
# them must also elect that one).
QUORUM = 2
# Set on every instance: a primary takes writes only while a replica is in sync with it.
MIN_REPLICAS_TO_WRITE = 1
READY_TIMEOUT_S = 30.0
HOST = "127.0.0.1"
# In the stack's directory: which instance was primary when the group last stopped.
PRIMARY_FILE = "redis-primary"

Spawn = Callable[[str, list[str]], Process]


@dataclass(frozen=True)
class Group:
    """Where the group runs: instance i on `redis_port + i`, Sentinel i on `sentinel_port + i`;
    the first instance is the primary at start."""

    redis_port: int
    sentinel_port: int
    directory: Path

    @property
    def redis_ports(self) -> list[int]:
        return [self.redis_port + i for i in range(INSTANCES)]

    @property
    def sentinel_ports(self) -> list[int]:
        return [self.sentinel_port + i for i in range(SENTINELS)]

    def port_of(self, name: str) -> int:
        kind, _, number = name.rpartition("-")
        ports = self.redis_ports if kind == "redis" else self.sentinel_ports
        return ports[int(number) - 1]

    def sentinels_setting(self) -> str:
        """REDIS_SENTINELS for the nodes."""
        return ",".join(f"{HOST}:{port}" for port in self.sentinel_ports)


def instance_names() -> list[str]:
    return [f"redis-{i + 1}" for i in range(INSTANCES)]


def sentinel_names() -> list[str]:
    return [f"sentinel-{i + 1}" for i in range(SENTINELS)]


def is_member(name: str) -> bool:
    return name in instance_names() or name in sentinel_names()


def instance_config(port: int, data_dir: Path, primary_port: int | None) -> str:
    lines = [
        f"include {conf.REDIS_CONF}",
        f"port {port}",
        f"dir {data_dir}",
        "daemonize no",
        'logfile ""',
        f"min-replicas-to-write {MIN_REPLICAS_TO_WRITE}",
    ]
    if primary_port is not None:
        lines.append(f"replicaof {HOST} {primary_port}")
    return "\n".join(lines) + "\n"


def sentinel_config(port: int, directory: Path, primary_port: int) -> str:
    own = [
        f"port {port}",
        f"bind {HOST}",
        f"dir {directory}",
        "daemonize no",
        'logfile ""',
        f"sentinel monitor {MASTER} {HOST} {primary_port} {QUORUM}",
    ]
    return "\n".join(own) + "\n" + conf.SENTINEL_CONF.read_text()


def start(group: Group, redis_server: str, spawn: Spawn, log_path: Callable[[str], Path]) -> None:
    """Write every member's file, start the primary, the replicas, then the Sentinels; return
    once the replicas are in sync and every Sentinel knows both replicas and the other two (so
    a failover can start the moment the primary fails).

    The primary is the instance that was primary when the group last stopped (`remember_primary`),
    else the first: starting another one as primary would have the replicas copy its older data."""
    first = _remembered_primary(group)
    started: dict[str, Process] = {}
    for name in [first, *(n for n in instance_names() if n != first)]:
        primary = None if name == first else group.port_of(first)
        started[name] = start_instance(group, name, redis_server, spawn, primary)
        _wait(partial(_answers, group.port_of(name)), name, started[name], log_path)
    for name in instance_names():
        if name != first:
            _wait(partial(_in_sync, group.port_of(name)), name, started[name], log_path)
    for name in sentinel_names():
        directory = group.directory / name
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "sentinel.conf"
        path.write_text(sentinel_config(group.port_of(name), directory, group.port_of(first)))
        started[name] = spawn(name, [redis_server, str(path), "--sentinel"])
    for name in sentinel_names():
        _wait(partial(_sentinel_ready, group.port_of(name)), name, started[name], log_path)


def start_instance(
    group: Group, name: str, redis_server: str, spawn: Spawn, primary_port: int | None
) -> Process:
    """Start a data instance from its own file, written now: a replica of `primary_port`, or the
    primary when that is None or its own port."""
    directory = group.directory / name
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "redis.conf"
    port = group.port_of(name)
    primary = None if primary_port == port else primary_port
    path.write_text(instance_config(port, directory, primary))
    return spawn(name, [redis_server, str(path)])


def restart_stopped(
    group: Group, running: Mapping[str, Process], redis_server: str, spawn: Spawn
) -> list[str]:
    """Start again every data instance that is not running, as a replica of the primary the
    Sentinels name (an old primary started as a primary would take writes its replicas never
    see until Sentinel demotes it); the names started."""
    again = [name for name in instance_names() if not processes.is_alive(running[name])]
    for name in again:
        start_instance(group, name, redis_server, spawn, _primary_to_follow(group, name))
    return again


def _primary_to_follow(group: Group, name: str) -> int:
    """The primary `name` should start under. While the Sentinels still name `name` itself and
    see it down, a failover may be under way: started now, it would be a primary beside the one
    being promoted, replicas could re-attach to it and confirm writes the failover then discards
    (seen: acknowledged adds lost with 1 replica ack, the old primary started 2 s after a
    SIGKILL). So it waits until they name another (then it starts as its replica) or stop seeing
    it down; past FAILOVER_WAIT_S no failover is coming (no majority of Sentinels), and it starts
    as the primary it still is."""
    own_port = group.port_of(name)
    deadline = time.monotonic() + failover_wait_s()
    while True:
        current = primary_port(group)
        if current is None:
            raise StackError("no Sentinel answers: no instance can be told which primary to follow")
        if current != own_port or not _seen_down(group) or time.monotonic() >= deadline:
            return current
        time.sleep(0.1)


def failover_wait_s() -> float:
    """Longest a failover takes once the Sentinels see the primary down, from the shared
    sentinel.conf: down-after-milliseconds, then an election that fails (all voting for
    themselves) and the next, 2 x failover-timeout, plus a second of margin."""
    settings: dict[str, float] = {}
    for line in conf.SENTINEL_CONF.read_text().splitlines():
        words = line.split()
        if len(words) == 4 and words[0] == "sentinel" and words[2] == MASTER:
            settings[words[1]] = float(words[3]) / 1000
    return settings["down-after-milliseconds"] + 2 * settings["failover-timeout"] + 1.0


def _seen_down(group: Group) -> bool:
    """Whether any Sentinel sees the primary down or is failing it over."""
    for port in group.sentinel_ports:
        try:
            with _client(port) as sentinel:
                flags = str(sentinel.sentinel_master(MASTER).get("flags", ""))
        except redis.RedisError:
            continue
        if {"s_down", "o_down", "failover_in_progress"} & set(flags.split(",")):
            return True
    return False


def act(group: Group, action: str, running: Mapping[str, Process], spawn: Spawn) -> None:
    """`abacus-stack redis ...`: stop (gracefully) or kill (SIGKILL) the current primary, so that
    the Sentinels fail over; start every instance that is not running, as a replica."""
    if action in ("stop", "kill"):
        primary = running[primary_name(group)]
        if action == "stop":
            processes.stop(primary, signal.SIGTERM, 15)
        else:
            processes.signal_group(primary, signal.SIGKILL)
            processes.wait_gone(primary, 5)
    elif action == "start":
        if not restart_stopped(group, running, binaries.require("redis-server"), spawn):
            raise StackError("every Redis instance already runs")
    else:
        raise StackError(f"unknown Redis action {action!r}: use stop, start or kill")


def stop(group: Group, running: Mapping[str, Process]) -> None:
    """Stop the group gracefully: the Sentinels first (else they would fail over a primary that
    is only stopping), noting the primary for the next start."""
    members = {name: p for name, p in running.items() if is_member(name)}
    if any(processes.is_alive(p) for p in members.values()):
        remember_primary(group)
    processes.stop_all([members[n] for n in sentinel_names() if n in members], signal.SIGTERM, 15)
    processes.stop_all([members[n] for n in instance_names() if n in members], signal.SIGTERM, 15)


def remember_primary(group: Group) -> None:
    """Note which instance is primary, for the next start of the group (see `start`)."""
    port = primary_port(group)
    if port is not None:
        (group.directory / PRIMARY_FILE).write_text(instance_names()[group.redis_ports.index(port)])


def _remembered_primary(group: Group) -> str:
    path = group.directory / PRIMARY_FILE
    name = path.read_text().strip() if path.exists() else ""
    return name if name in instance_names() else instance_names()[0]


def primary_port(group: Group) -> int | None:
    """The primary's port as the first Sentinel that answers names it."""
    for port in group.sentinel_ports:
        try:
            with _client(port) as sentinel:
                address = sentinel.sentinel_get_master_addr_by_name(MASTER)
        except redis.RedisError:
            continue
        if address:
            return int(address[1])
    return None


def primary_name(group: Group) -> str:
    port = primary_port(group)
    if port is None:
        raise StackError("no Sentinel answers: the primary is unknown")
    return instance_names()[group.redis_ports.index(port)]


def role(port: int) -> str | None:
    """`primary` or `replica` as the instance itself says (ROLE), None when it does not answer."""
    try:
        with _client(port) as client:
            reply = client.execute_command("ROLE")
    except redis.RedisError:
        return None
    return {b"master": "primary", b"slave": "replica"}.get(reply[0], str(reply[0]))


def _client(port: int) -> redis.Redis:
    return redis.Redis(host=HOST, port=port, socket_timeout=1, socket_connect_timeout=1)


def _answers(port: int) -> bool:
    try:
        with _client(port) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _in_sync(port: int) -> bool:
    try:
        with _client(port) as client:
            return bool(client.info("replication").get("master_link_status") == "up")
    except redis.RedisError:
        return False


def _sentinel_ready(port: int) -> bool:
    try:
        with _client(port) as sentinel:
            state = sentinel.sentinel_master(MASTER)
    except redis.RedisError:
        return False
    replicas, others = state.get("num-slaves", 0), state.get("num-other-sentinels", 0)
    return bool(replicas == INSTANCES - 1 and others == SENTINELS - 1)


def _wait(
    ready: Callable[[], bool], name: str, process: Process, log_path: Callable[[str], Path]
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready():
        if not processes.is_alive(process):
            raise StackError(f"{name} exited during start; see {log_path(name)}")
        if time.monotonic() > deadline:
            raise StackError(f"{name} was not ready within {READY_TIMEOUT_S:.0f} s")
        time.sleep(0.05)
