"""Fixtures: real local stacks (redis-server, Gunicorn nodes, nginx) on free ports.

`stack` is one stack shared by the session (tests reset the sum first), started by the first
test that asks for it; `make_stack` starts a fresh one for a test that breaks things (kills a
node, stops Redis) and stops it afterwards. Each fails a test not marked `stack` before it starts
anything (see tests/stack_marker.py).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from abacus.local_stack import (
    LocalStack,
    StackConfig,
    binaries,
    nginx_config,
    processes,
    redis_server,
)
from abacus.local_stack.ports import free_ports
from abacus.local_stack.processes import Process
from tests.api_client import ADMIN_TOKEN, Api
from tests.stack_marker import require_stack_marker

# The test stacks' add deadline and the balancer's read timeout (which must exceed it by the grace
# and a margin). Far above any latency seen here under load, two busy loops included, so that a
# test asserting "every add acknowledged" never depends on the machine's speed; the production
# default (3 s) changes no behaviour those tests look at, and tests of the deadline set their own.
TEST_DEADLINE_MS = "10000"
TEST_PROXY_READ_TIMEOUT_S = 15.0


def stack_config(
    directory: Path,
    nodes: int = 3,
    redis_url: str | None = None,
    rate: tuple[int, int] | None = None,
    *,
    proxy_read_timeout_s: float = TEST_PROXY_READ_TIMEOUT_S,
    client_body_timeout_s: float = nginx_config.CLIENT_BODY_TIMEOUT_S,
    redis_ha: bool = False,
    **node_env: str,
) -> StackConfig:
    """A stack on free ports; `rate` = (per second, burst) turns the balancer's limit on;
    `redis_ha`: a primary, two replicas and three Sentinels instead of one Redis."""
    # Every request's access line: tests find which node answered what, and an add's batch.
    node_env = {"ABACUS_ACCESS_LOG": "all", **node_env}
    return StackConfig.on_free_ports(
        directory,
        nodes,
        redis_url=redis_url,
        redis_ha=redis_ha,
        rate_limit=rate is not None,
        rate_per_s=rate[0] if rate else 1,
        rate_burst=rate[1] if rate else 1,
        proxy_read_timeout_s=proxy_read_timeout_s,
        client_body_timeout_s=client_body_timeout_s,
        node_env={
            "ABACUS_ADMIN_TOKEN": ADMIN_TOKEN,
            "ABACUS_ADD_DEADLINE_MS": TEST_DEADLINE_MS,
            **node_env,
        },
    )


class SharedStack:
    """The session's one stack, started on first use: a session fixture cannot see which test
    asks for it, so the function-scoped `stack` checks the marker and then asks this."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp_path_factory = tmp_path_factory
        self._running: LocalStack | None = None

    def get(self) -> LocalStack:
        if self._running is None:
            running = LocalStack(stack_config(self._tmp_path_factory.mktemp("stack")))
            running.up()
            self._running = running
        return self._running

    def down(self) -> None:
        if self._running is not None:
            self._running.down()
            self._running = None


@pytest.fixture(scope="session")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStack]:
    shared = SharedStack(tmp_path_factory)
    try:
        yield shared
    finally:
        shared.down()


@pytest.fixture
def stack(request: pytest.FixtureRequest, shared_stack: SharedStack) -> LocalStack:
    require_stack_marker(request, "stack")
    return shared_stack.get()


StackFactory = Callable[..., LocalStack]


@pytest.fixture
def make_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StackFactory]:
    require_stack_marker(request, "make_stack")
    started: list[LocalStack] = []

    def start(
        nodes: int = 3,
        redis_url: str | None = None,
        rate: tuple[int, int] | None = None,
        proxy_read_timeout_s: float = TEST_PROXY_READ_TIMEOUT_S,
        client_body_timeout_s: float = nginx_config.CLIENT_BODY_TIMEOUT_S,
        *,
        redis_ha: bool = False,
        **node_env: str,
    ) -> LocalStack:
        directory = tmp_path / f"stack{len(started)}"
        config = stack_config(
            directory,
            nodes,
            redis_url,
            rate,
            proxy_read_timeout_s=proxy_read_timeout_s,
            client_body_timeout_s=client_body_timeout_s,
            redis_ha=redis_ha,
            **node_env,
        )
        running = LocalStack(config)
        started.append(running)
        running.up()
        return running

    try:
        yield start
    finally:
        for running in started:
            running.down()


@pytest.fixture
def api(stack: LocalStack) -> Iterator[Api]:
    client = Api(stack.config.url)
    assert client.reset().status == 200
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def standalone_redis(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[int, Process]]:
    """A redis-server of the test's own, outside any stack (port, process)."""
    require_stack_marker(request, "standalone_redis")
    (port,) = free_ports(1)
    data = tmp_path / "redis-data"
    data.mkdir()
    log = tmp_path / "redis.log"
    argv = redis_server.command(binaries.require("redis-server"), port, data)
    process = processes.spawn("redis", argv, log, {}, tmp_path)
    try:
        redis_server.wait_ready(f"redis://127.0.0.1:{port}/0", process, log)
        yield port, process
    finally:
        processes.stop(process, signal.SIGTERM, 10)


@pytest.fixture(autouse=True)
def api_clients_closed() -> Iterator[None]:
    yield
    Api.close_all()


@pytest.fixture(autouse=True, scope="session")
def no_process_outlives_the_tests() -> Iterator[None]:
    """Every process a test started is stopped by the end: a leak is a failing teardown."""
    yield
    running = [child for child in processes.running_children() if child.poll() is None]
    for child in running:
        child.kill()
        child.wait()
    assert not running, f"left running: {[child.args for child in running]}"
