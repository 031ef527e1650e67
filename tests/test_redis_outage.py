"""Redis gone and back: fast 503s, honest health, and the same nodes serve again."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import redis

from abacus.local_stack import binaries, processes, redis_server
from abacus.local_stack.ports import free_ports
from abacus.local_stack.stack import GUNICORN_CONF, health_status
from tests.api_client import Api
from tests.bounds import FAIL_FAST_S, HEALTH_BOUND_S, SLACK_S
from tests.conftest import StackFactory
from tests.waiting import wait_for_health

pytestmark = pytest.mark.stack

T = TypeVar("T")

# Writes stay paused until the test ends the pause itself: long enough for any machine.
PAUSE_MS = 30_000


def timed(call: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_redis_stopped_then_started(make_stack: StackFactory) -> None:
    stack = make_stack()
    api = Api(stack.config.url)
    assert api.add(5).status == 200
    node_pids = {name: stack.processes[name].pid for name in stack.node_names()}

    stack.redis("stop")
    reply, elapsed = timed(lambda: api.add(1))
    assert reply.status == 503
    assert reply.body["error"] == "unavailable"
    assert reply.headers["Retry-After"] == "1"
    assert elapsed < FAIL_FAST_S + SLACK_S, "an add fails fast when Redis is gone"
    read = api.request("GET", "/abacus/sum")
    assert read.status == 503
    assert read.headers["Retry-After"] == "1"
    node = Api(f"http://127.0.0.1:{stack.config.node_port}")
    health, elapsed = timed(lambda: node.request("GET", "/health"))
    assert health.status == 503
    assert health.body["status"] == "unhealthy"
    assert health.body["redis_connected"] is False
    assert elapsed < HEALTH_BOUND_S + SLACK_S

    stack.redis("start")
    assert wait_for_health(stack.config.node_port, 200)
    assert api.add(2).status == 200
    assert api.sum() == 7, "the refused add never counted; the one before survived (AOF)"
    for name, pid in node_pids.items():
        assert stack.processes[name].pid == pid
        assert processes.is_alive(stack.processes[name]), f"{name} recovered without a restart"


def test_liveness_answers_while_redis_and_the_nodes_are_down(make_stack: StackFactory) -> None:
    """/livez is what an orchestrator restarts a process on (Kubernetes' liveness probe): a node's
    must not follow Redis, or a Redis outage would restart every node; the balancer's must not
    follow the nodes."""
    stack = make_stack(nodes=1)
    node = Api(f"http://127.0.0.1:{stack.config.node_port}")
    balancer = Api(stack.config.url)
    stack.redis("stop")
    assert node.request("GET", "/health").status == 503
    live = node.request("GET", "/livez")
    assert live.status == 200
    assert live.body == {"status": "alive", "node_id": "node-1"}
    assert live.headers["X-Node-Id"] == "node-1"

    processes.stop(stack.processes["node-1"], signal.SIGTERM, 30)
    assert balancer.request("GET", "/abacus/sum").status == 502, "no node is left"
    own = balancer.request("GET", "/livez")
    assert own.status == 200
    assert own.body == {"status": "alive"}
    assert "X-Node-Id" not in own.headers, "nginx answered it, no node"


def test_node_starts_while_redis_is_down_and_recovers(tmp_path: Path) -> None:
    redis_port, node_port = free_ports(2)
    env = {
        "NODE_ID": "node-x",
        "PORT": str(node_port),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "WEB_CONCURRENCY": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    node = processes.spawn(
        "node-x",
        [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF],
        tmp_path / "node.log",
        env,
        tmp_path,
    )
    redis_process = None
    try:
        assert wait_for_health(node_port, 503), "up and reporting unhealthy"
        data = tmp_path / "data"
        data.mkdir()
        argv = redis_server.command(binaries.require("redis-server"), redis_port, data)
        redis_process = processes.spawn("redis", argv, tmp_path / "redis.log", {}, tmp_path)
        assert wait_for_health(node_port, 200), "healthy once Redis appears, no restart"
        assert Api(f"http://127.0.0.1:{node_port}").add(3).status == 200
        assert processes.is_alive(node)
    finally:
        processes.stop(node, signal.SIGTERM, 30)
        if redis_process is not None:
            processes.stop(redis_process, signal.SIGTERM, 10)


def test_health_is_unhealthy_while_writes_are_paused(make_stack: StackFactory) -> None:
    stack = make_stack(nodes=1)
    client = redis.Redis.from_url(stack.config.effective_redis_url)
    assert health_status(stack.config.node_port) == 200
    client.client_pause(PAUSE_MS, all=False)
    try:
        started = time.monotonic()
        assert health_status(stack.config.node_port) == 503, "reads answer, writes do not"
        assert time.monotonic() - started < HEALTH_BOUND_S + SLACK_S
    finally:
        client.client_unpause()
        client.close()
    assert wait_for_health(stack.config.node_port, 200)
