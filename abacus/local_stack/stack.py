"""Start, watch and stop the local stack: Redis, N Gunicorn nodes and nginx, all on 127.0.0.1.

What runs is recorded in `<dir>/state.json`, so `down`, `status`, `restart` and `redis ...` work
from another process than the one that started it (`up --detach`).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from abacus import conf
from abacus.local_stack import binaries, nginx_config, ports, processes, redis_ha
from abacus.local_stack import redis_server as redis_servers
from abacus.local_stack.errors import StackError
from abacus.local_stack.processes import Process
from abacus.local_stack.redis_ha import Group as RedisGroup
from abacus.node.settings import Settings, SettingsError

GUNICORN_CONF = conf.GUNICORN_CONFIG
# The secret nginx and the nodes share, generated on the first `up` when none is configured
# (ABACUS_BALANCER_SECRET_FILE in the environment or the nodes' settings names one of your own).
BALANCER_SECRET_FILE = "balancer_secret"  # noqa: S105 - a file name
SECRET_SETTING = "ABACUS_BALANCER_SECRET_FILE"  # noqa: S105 - a variable name

# Longer than Gunicorn's graceful_timeout (20 s), so a graceful stop is never cut short.
NODE_STOP_TIMEOUT_S = 30.0
HEALTH_TIMEOUT_S = 30.0


@dataclass
class StackConfig:
    port: int = 8080
    node_port: int = 8001
    nodes: int = 3
    workers: int = 2
    redis_port: int = 6380
    redis_url: str | None = None
    # A primary, two replicas and three Sentinels instead of one Redis (redis_ha.py); the nodes
    # then find the primary through the Sentinels.
    redis_ha: bool = False
    sentinel_port: int = 26380
    dir: Path = field(default_factory=lambda: Path(".stack"))
    rate_limit: bool = True
    rate_per_s: int = nginx_config.DEFAULT_RATE_LIMIT
    rate_burst: int = nginx_config.DEFAULT_RATE_BURST
    # Extra environment for the nodes (docs/configuration.md, e.g. ABACUS_MAX_BATCH).
    node_env: dict[str, str] = field(default_factory=dict)
    # The ASGI app Gunicorn serves instead of the node's ("module:app" or "module:factory()"),
    # with the node's Gunicorn configuration and worker all the same: the benchmark's ceiling.
    app: str | None = None
    # The balancer's two slow waits: fault tests shorten them instead of sleeping 10 s.
    proxy_read_timeout_s: float = nginx_config.PROXY_READ_TIMEOUT_S
    client_body_timeout_s: float = nginx_config.CLIENT_BODY_TIMEOUT_S

    @property
    def balancer_secret_path(self) -> Path:
        configured = self.node_env.get(SECRET_SETTING) or os.environ.get(SECRET_SETTING)
        return Path(configured) if configured else self.dir.resolve() / BALANCER_SECRET_FILE

    def node_settings(self) -> Settings:
        """The settings the nodes will read (this environment, then `node_env`), parsed as the
        nodes parse them, so that the balancer is configured to match."""
        env = {**os.environ, SECRET_SETTING: str(self.balancer_secret_path), **self.node_env}
        try:
            return Settings.from_env(env)
        except SettingsError as exc:
            raise StackError(f"the nodes' settings: {exc}") from None

    @property
    def node_ports(self) -> list[int]:
        return [self.node_port + i for i in range(self.nodes)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def own_redis(self) -> bool:
        return self.redis_url is None

    @property
    def effective_redis_url(self) -> str:
        """Its Redis; with `redis_ha`, the instance that was primary at start."""
        return self.redis_url or f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def redis_group(self) -> RedisGroup:
        return RedisGroup(self.redis_port, self.sentinel_port, self.dir.resolve())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["dir"] = str(self.dir)
        return data

    @classmethod
    def on_free_ports(cls, directory: Path, nodes: int = 3, **options: Any) -> StackConfig:
        """A stack on ports that are free now: for tests and throwaway stacks."""
        node_port = ports.free_port_block(nodes)
        taken = set(range(node_port, node_port + nodes))
        port, redis_port = [p for p in ports.free_ports(nodes + 2) if p not in taken][:2]
        if options.get("redis_ha"):
            # Each group's ports are consecutive (redis_ha.Group), and apart from the nodes'.
            redis_port = _block_apart(redis_ha.INSTANCES, taken | {port})
            taken |= set(range(redis_port, redis_port + redis_ha.INSTANCES))
            options["sentinel_port"] = _block_apart(redis_ha.SENTINELS, taken | {port})
        return cls(
            port=port,
            node_port=node_port,
            nodes=nodes,
            redis_port=redis_port,
            dir=directory,
            **options,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackConfig:
        return cls(**{**data, "dir": Path(data["dir"])})


def _block_apart(count: int, taken: set[int]) -> int:
    """The first of `count` consecutive free ports, none of them in `taken`."""
    while True:
        first = ports.free_port_block(count)
        if not taken & set(range(first, first + count)):
            return first


def node_id(index: int) -> str:
    return f"node-{index + 1}"


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.dir = config.dir.resolve()
        self.processes: dict[str, Process] = {}

    # ----- state -----------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.dir / "state.json"

    def log_path(self, name: str) -> Path:
        return self.dir / "logs" / f"{name}.log"

    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        state = {
            "config": self.config.to_json(),
            "processes": {name: p.to_json() for name, p in self.processes.items()},
        }
        self.state_path.write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, directory: Path) -> LocalStack:
        path = directory.resolve() / "state.json"
        if not path.exists():
            raise StackError(f"no stack runs from {directory} (no {path.name} there)")
        state = json.loads(path.read_text())
        stack = cls(StackConfig.from_json(state["config"]))
        stack.processes = {n: Process.from_json(p) for n, p in state["processes"].items()}
        return stack

    def _adopt_saved_state(self) -> None:
        """Take the processes the state file names: another process (`abacus-stack restart`,
        the checker's nemesis) may have replaced some since this one started them, and every
        start is saved there at once."""
        if not self.state_path.exists():
            return
        try:
            saved = LocalStack.load(self.dir).processes
        except (StackError, ValueError, KeyError):
            return  # unreadable: what this process knows is all there is
        self.processes.update(saved)

    # ----- up / down ---------------------------------------------------------------------------

    def up(self) -> None:
        config = self.config
        if self.state_path.exists() and any(
            processes.is_alive(p) for p in LocalStack.load(self.dir).processes.values()
        ):
            raise StackError(f"a stack already runs from {self.dir}; stop it with `down` first")
        redis_server = binaries.require("redis-server") if config.own_redis else None
        nginx = binaries.require("nginx")
        if config.redis_ha:
            group = config.redis_group
            for name in [*redis_ha.instance_names(), *redis_ha.sentinel_names()]:
                ports.require_free(group.port_of(name), name)
        elif config.own_redis:
            ports.require_free(config.redis_port, "Redis")
        for index, port in enumerate(config.node_ports):
            ports.require_free(port, node_id(index))
        ports.require_free(config.port, "balancer")
        self.dir.mkdir(parents=True, exist_ok=True)
        write_default_secret(config.balancer_secret_path)
        try:
            if redis_server is not None and config.redis_ha:
                redis_ha.start(config.redis_group, redis_server, self._spawn, self.log_path)
            elif redis_server is not None:
                self._start_redis(redis_server)
            for index in range(config.nodes):
                self._start_node(index)
            for index in range(config.nodes):
                self._wait_healthy(node_id(index), config.node_ports[index])
            self._start_nginx(nginx)
            self._wait_healthy("nginx", config.port)
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """nginx first (no new requests), then the nodes (finish and commit), Redis last: with
        `redis_ha` the Sentinels before the instances (else they would fail over the primary)."""
        self._adopt_saved_state()
        if "nginx" in self.processes:
            processes.stop(self.processes["nginx"], signal.SIGQUIT, 15)
        nodes = [p for name, p in self.processes.items() if name.startswith("node-")]
        processes.stop_all(nodes, signal.SIGTERM, NODE_STOP_TIMEOUT_S)
        if "redis" in self.processes:
            processes.stop(self.processes["redis"], signal.SIGTERM, 15)
        if self.config.redis_ha:
            redis_ha.stop(self.config.redis_group, self.processes)
        self.processes.clear()
        self.state_path.unlink(missing_ok=True)

    def wait_for_signal(self, ready: Callable[[], None] | None = None) -> None:
        """Run in the foreground until SIGINT, SIGTERM or SIGHUP, then stop everything in order.

        `ready` runs once the handlers are in place (e.g. to say "up"): whoever reacts to that by
        sending a signal finds them there, not Python's default that would exit without `down`.
        Signals that arrive while the stack stops (a second Ctrl-C, or the SIGTERM that `timeout`
        sends to both make and this process) are noted and ignored: cutting `down` short would
        leave the nodes and Redis running."""
        received: list[int] = []

        def handler(signum: int, frame: object) -> None:
            received.append(signum)

        watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {s: signal.signal(s, handler) for s in watched}
        try:
            if ready is not None:
                ready()
            while not received:
                time.sleep(0.2)
            print("stopping: nginx, then the nodes, then Redis ...", file=sys.stderr, flush=True)
            self.down()
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)

    # ----- the parts --------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        process = processes.spawn(
            name, argv, self.log_path(name), {**os.environ, **(env or {})}, self.dir
        )
        self.processes[name] = process
        self._save()
        return process

    def _start_redis(self, redis_server: str) -> None:
        data = self.dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        process = self._spawn(
            "redis", redis_servers.command(redis_server, self.config.redis_port, data)
        )
        redis_servers.wait_ready(self.config.effective_redis_url, process, self.log_path("redis"))

    def node_env(self, index: int) -> dict[str, str]:
        return {
            "NODE_ID": node_id(index),
            "PORT": str(self.config.node_ports[index]),
            "HOST": "127.0.0.1",
            **self._redis_env(),
            "WEB_CONCURRENCY": str(self.config.workers),
            SECRET_SETTING: str(self.config.balancer_secret_path),
            "PROMETHEUS_MULTIPROC_DIR": str(self.dir / "metrics" / node_id(index)),
            **self.config.node_env,
        }

    def _redis_env(self) -> dict[str, str]:
        """Where the nodes find Redis: its URL, or the Sentinels (REDIS_URL then empty: a node
        refuses both), with answers confirmed by 1 replica unless the environment says else."""
        if not self.config.redis_ha:
            return {"REDIS_URL": self.config.effective_redis_url}
        return {
            "REDIS_URL": "",
            "REDIS_SENTINELS": self.config.redis_group.sentinels_setting(),
            "REDIS_SENTINEL_MASTER": redis_ha.MASTER,
            "ABACUS_MIN_REPLICA_ACKS": os.environ.get("ABACUS_MIN_REPLICA_ACKS") or "1",
        }

    def _start_node(self, index: int) -> Process:
        argv = [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF]
        if self.config.app is not None:
            argv.append(self.config.app)  # Gunicorn's app argument overrides the config's
        return self._spawn(node_id(index), argv, self.node_env(index))

    def _start_nginx(self, nginx: str) -> None:
        prefix = self.dir / "nginx"
        node_settings = self.config.node_settings()
        if node_settings.balancer_secret is None:
            raise StackError(f"{SECRET_SETTING} is set empty: the balancer needs a secret")
        env = nginx_config.local_env(
            self.config.port,
            self.config.node_ports,
            balancer_secret=node_settings.balancer_secret,
            rate_limit=self.config.rate_limit,
            rate_per_s=self.config.rate_per_s,
            rate_burst=self.config.rate_burst,
            add_deadline_s=node_settings.add_deadline_s,
            retry_key_ttl_s=node_settings.retry_key_ttl_s,
            proxy_read_timeout_s=self.config.proxy_read_timeout_s,
            client_body_timeout_s=self.config.client_body_timeout_s,
        )
        main = nginx_config.write_prefix(prefix, env)
        pid_file = prefix / "nginx.pid"
        argv = [
            nginx, "-p", f"{prefix}/", "-c", str(main), "-e", "stderr",
            "-g", f"daemon off; pid {pid_file};",
        ]  # fmt: skip
        self._spawn("nginx", argv)

    def _wait_healthy(self, name: str, port: int, timeout: float = HEALTH_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if health_status(port) == 200:
                return
            if not processes.is_alive(self.processes[name]):
                raise StackError(f"{name} exited during start; see {self.log_path(name)}")
            if time.monotonic() > deadline:
                raise StackError(f"{name} was not healthy within {timeout:.0f} s")
            time.sleep(0.1)

    # ----- operations on a running stack -------------------------------------------------------

    def node_names(self) -> list[str]:
        return [node_id(i) for i in range(self.config.nodes)]

    def restart(self, name: str | None = None) -> None:
        """Rolling graceful restart: one node at a time, each healthy again before the next."""
        names = [name] if name else self.node_names()
        for node in names:
            if node not in self.node_names():
                raise StackError(f"no node {node!r}; the nodes are {', '.join(self.node_names())}")
        for position, node in enumerate(names):
            index = self.node_names().index(node)
            processes.stop(self.processes[node], signal.SIGTERM, NODE_STOP_TIMEOUT_S)
            self._start_node(index)
            self._wait_healthy(node, self.config.node_ports[index])
            if position < len(names) - 1:
                # nginx left the node out when it went down and tries it again only after its
                # fail_timeout: stopping the next one sooner could leave nginx with none.
                time.sleep(nginx_config.FAIL_TIMEOUT_S + 0.5)

    def redis(self, action: str) -> None:
        if not self.config.own_redis:
            raise StackError(
                "this stack uses an external Redis (--redis-url); it is not ours to stop"
            )
        if self.config.redis_ha:
            redis_ha.act(self.config.redis_group, action, self.processes, self._spawn)
            return
        if action == "stop":
            processes.stop(self.processes["redis"], signal.SIGTERM, 15)
        elif action == "kill":
            processes.signal_group(self.processes["redis"], signal.SIGKILL)
            processes.wait_gone(self.processes["redis"], 5)
        elif action == "start":
            if processes.is_alive(self.processes["redis"]):
                raise StackError("Redis already runs")
            self._start_redis(binaries.require("redis-server"))
        else:
            raise StackError(f"unknown Redis action {action!r}: use stop, start or kill")

    # ----- faults on purpose (the checker's nemesis, abacus/harness/nemesis.py) ----------------

    def redis_primary(self) -> str:
        """The name of the Redis process that takes writes now: `redis`, or with `redis_ha` the
        instance the Sentinels name primary (it changes with each failover)."""
        if self.config.redis_ha:
            return redis_ha.primary_name(self.config.redis_group)
        return "redis"

    def redis_primary_url(self) -> str:
        if self.config.redis_ha:
            port = self.config.redis_group.port_of(self.redis_primary())
            return f"redis://127.0.0.1:{port}/0"
        return self.config.effective_redis_url

    def kill_node(self, name: str) -> None:
        """SIGKILL a node's whole process group (master and workers); returns once it is gone."""
        process = self.processes[self._node(name)]
        processes.signal_group(process, signal.SIGKILL)
        if not processes.wait_gone(process, 5):
            raise StackError(f"{name} outlived SIGKILL")

    def start_node(self, name: str) -> None:
        """Start a node that is not running; returns once it is healthy."""
        index = self.node_names().index(self._node(name))
        if processes.is_alive(self.processes[name]):
            raise StackError(f"{name} already runs")
        self._start_node(index)
        self._wait_healthy(name, self.config.node_ports[index])

    def pause(self, name: str) -> None:
        """SIGSTOP the whole process group of a node (node-N), of Redis ("redis") or, with
        `redis_ha`, of one member of the Redis group (redis-N, sentinel-N)."""
        self._signal_part(name, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        """SIGCONT what `pause` stopped."""
        self._signal_part(name, signal.SIGCONT)

    def wait_all_healthy(self, timeout: float = HEALTH_TIMEOUT_S) -> None:
        """Until every node and the balancer answer /health with 200; StackError after
        `timeout` (or as soon as one of them has exited)."""
        deadline = time.monotonic() + timeout
        parts = [*zip(self.node_names(), self.config.node_ports, strict=True)]
        for name, port in [*parts, ("nginx", self.config.port)]:
            self._wait_healthy(name, port, max(0.0, deadline - time.monotonic()))

    def _node(self, name: str) -> str:
        if name not in self.node_names():
            raise StackError(f"no node {name!r}; the nodes are {', '.join(self.node_names())}")
        return name

    def _signal_part(self, name: str, signum: int) -> None:
        if name == "redis" and not self.config.own_redis:
            raise StackError("this stack uses an external Redis (--redis-url); it is not ours")
        is_redis = name == "redis" or (self.config.redis_ha and redis_ha.is_member(name))
        if not is_redis:
            self._node(name)
        if not processes.signal_group(self.processes[name], signum):
            raise StackError(f"{name} is not running")

    def status(self) -> dict[str, dict[str, object]]:
        report: dict[str, dict[str, object]] = {}
        for name, process in self.processes.items():
            alive = processes.is_alive(process)
            entry: dict[str, object] = {"pid": process.pid, "running": alive}
            if name.startswith("node-"):
                entry["port"] = self.config.node_ports[self.node_names().index(name)]
                entry["healthy"] = alive and health_status(int(str(entry["port"]))) == 200
            elif name == "nginx":
                entry["port"] = self.config.port
                entry["healthy"] = alive and health_status(self.config.port) == 200
            elif name == "redis":
                entry["port"] = self.config.redis_port
            elif redis_ha.is_member(name):
                entry["port"] = self.config.redis_group.port_of(name)
                if name in redis_ha.instance_names():
                    entry["role"] = redis_ha.role(int(str(entry["port"]))) if alive else None
            report[name] = entry
        return report


def write_default_secret(path: Path) -> None:
    """Create the stack's own secret file (owner-only) unless it, or one of yours, exists."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secrets.token_hex(32) + "\n")


def health_status(port: int, timeout: float = 2.0) -> int | None:
    """The status of GET /health on 127.0.0.1:port, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None
