"""Fixtures of the in-process unit tests: settings, the app over fakeredis, and no network at all.

No test here may reach a real Redis: the default REDIS_URL is 127.0.0.1:6379, where a system Redis
may run, and a test that quietly used it would pass or fail by whatever that Redis holds.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import fakeredis
import pytest
from fakeredis import FakeServer
from fakeredis._commands import Signature
from fakeredis.aioredis import AsyncFakeSocket, FakeAsyncRedisConnection, FakeReader, FakeWriter
from redis.asyncio import BlockingConnectionPool
from starlette.testclient import TestClient

from abacus.node import redis_pool
from abacus.node.main import PoolFactory, create_app
from abacus.node.settings import Settings

ADMIN_TOKEN = "unit-admin-token"
BALANCER_SECRET = "unit-balancer-secret-0123456789abcdef"
NODE_ID = "unit-node"
SUM_KEY = "abacus:sum"
# What the fake INFO reports, so that /health's stats can be checked field by field.
INFO_STATS = {
    "connected_clients": 3,
    "total_commands_processed": 42,
    "used_memory_human": "1.05M",
}
# INFO's memory figures (the key store's budget reads them); a test changes them with
# monkeypatch.setitem. maxmemory 0 is Redis's "no limit", as in fakeredis.
INFO_MEMORY = {"used_memory": 1_100_000, "maxmemory": 0}


def make_settings(**env: str) -> Settings:
    """Settings from these variables only: the environment of the test run plays no part."""
    return Settings.from_env({"NODE_ID": NODE_ID, "ABACUS_ADMIN_TOKEN": ADMIN_TOKEN, **env})


@pytest.fixture
def balancer_secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "balancer_secret"
    path.write_text(BALANCER_SECRET + "\n")
    return path


@pytest.fixture
def balancer_settings(balancer_secret_file: Path) -> Settings:
    """Settings of a node that shares BALANCER_SECRET with its balancer."""
    return make_settings(ABACUS_BALANCER_SECRET_FILE=str(balancer_secret_file))


class _SocketWithInfo(AsyncFakeSocket):
    """fakeredis implements no INFO, which /health sends; this one answers it."""

    # No fixed arguments, any number of sections (fakeredis annotates `fixed` as a 1-tuple).
    _INFO = Signature("info", "info", (), (bytes,))  # type: ignore[arg-type]

    def _name_to_func(self, cmd_name: str) -> tuple[Callable[..., Any] | None, Signature]:
        if cmd_name == "info":
            return self._info, self._INFO
        return super()._name_to_func(cmd_name)

    def _info(self, *sections: bytes) -> bytes:
        fields = {**INFO_STATS, **INFO_MEMORY}
        return "".join(f"{name}:{value}\r\n" for name, value in fields.items()).encode()


class FakeConnection(FakeAsyncRedisConnection):
    """fakeredis's connection, over a socket that also answers INFO."""

    async def _connect(self) -> None:
        await super()._connect()  # refuses when the fake server is "down"
        # Replace the socket super() made before anything was sent on it.
        assert self._sock is not None
        assert self._server is not None
        self._server.sockets.remove(self._sock)
        self._sock = _SocketWithInfo(
            self._server,
            self.db,
            client_class=self._client_class,
            lua_modules=self._lua_modules,
            client_info=self._client_info,
        )
        self._reader = FakeReader(self._sock)
        self._writer = FakeWriter(self._sock)


def fake_pools(
    server: FakeServer, connection_class: type[FakeAsyncRedisConnection] = FakeConnection
) -> PoolFactory:
    """The real pools (timeouts, no retries, size), connecting to `server` instead of REDIS_URL."""

    def make_pool(
        settings: Settings, *, socket_timeout: float | None = redis_pool.SOCKET_TIMEOUT_S
    ) -> BlockingConnectionPool:
        pool = redis_pool.make_pool(settings, socket_timeout=socket_timeout)
        pool.connection_class = connection_class
        pool.connection_kwargs["server"] = server
        return pool

    return make_pool


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Refuses every IP connection and fails the test that tried one, even if the code under test
    swallowed the refusal (as /health does). Yields the addresses tried, for the test that wants
    to see the guard work."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def refuse(sock: socket.socket, address: Any) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            real_connect(sock, address)
            return
        attempts.append(address)
        raise ConnectionRefusedError(errno.ECONNREFUSED, f"unit tests use no network: {address}")

    def refuse_ex(sock: socket.socket, address: Any) -> int:
        try:
            refuse(sock, address)
        except ConnectionRefusedError:
            return errno.ECONNREFUSED
        return 0

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse_ex)
    yield attempts
    assert not attempts, f"a unit test tried to connect to {attempts}"


@pytest.fixture
def redis_server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def redis_data(redis_server: FakeServer) -> Iterator[fakeredis.FakeRedis]:
    """A plain client of the fake server, to set up and inspect what the app finds in Redis."""
    client = fakeredis.FakeRedis(server=redis_server)
    try:
        yield client
    finally:
        client.close()


class ClientFactory(Protocol):
    def __call__(
        self,
        settings: Settings | None = None,
        *,
        server: FakeServer | None = None,
        make_pool: PoolFactory | None = None,
        peer: tuple[str, int] = ...,
    ) -> TestClient: ...


@pytest.fixture
def make_client(redis_server: FakeServer) -> Iterator[ClientFactory]:
    """Starts the app (lifespan included) over the fake server; stopped after the test."""
    started: list[TestClient] = []

    def start(
        settings: Settings | None = None,
        *,
        server: FakeServer | None = None,
        make_pool: PoolFactory | None = None,
        peer: tuple[str, int] = ("testclient", 50000),
    ) -> TestClient:
        pools = make_pool or fake_pools(server or redis_server)
        app = create_app(settings or make_settings(), make_pool=pools)
        # A name the nodes serve by default (TestClient's own "testserver" is refused, 421).
        client = TestClient(app, base_url="http://localhost", client=peer)
        client.__enter__()
        started.append(client)
        return client

    try:
        yield start
    finally:
        for client in reversed(started):
            client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client()
