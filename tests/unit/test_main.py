"""The app factory: its Redis seam, what the lifespan sets up and tears down, the error handlers."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from typing import Any, cast

import pytest
import uvicorn
from fakeredis import FakeServer
from redis.asyncio import BlockingConnectionPool
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.testclient import TestClient

from abacus.node import __main__ as dunder_main
from abacus.node import redis_pool
from abacus.node.host_check import HostCheckMiddleware
from abacus.node.http_protocol import AbacusHttpProtocol
from abacus.node.logging_config import logging_config
from abacus.node.main import _http_error, _without_password, create_app
from abacus.node.node_limits import (
    CONCURRENCY_LIMIT,
    GRACEFUL_TIMEOUT_S,
    KEEPALIVE_S,
    drain_timeout_s,
)
from abacus.node.protocol_answers import NODE_ID_KEY
from abacus.node.request_context import RequestContextMiddleware
from abacus.node.settings import Settings
from tests.unit.conftest import ClientFactory, FakeConnection, fake_pools, make_settings


def app_state(client: TestClient) -> State:
    middleware = cast(RequestContextMiddleware, client.app)
    host_check = cast(HostCheckMiddleware, middleware.app)
    return cast(Starlette, host_check.app).state


def test_by_default_the_pools_go_to_redis_url(no_network: list[object]) -> None:
    assert inspect.signature(create_app).parameters["make_pool"].default is redis_pool.make_pool
    app = create_app(make_settings(REDIS_URL="redis://127.0.0.1:6379/0"))
    with TestClient(app, base_url="http://localhost") as client:
        reply = client.get("/abacus/sum")
    assert reply.status_code == 503
    assert no_network, "the real pool tried REDIS_URL"
    assert set(no_network) == {("127.0.0.1", 6379)}
    no_network.clear()  # refused by the guard, as every unit test's would be


def test_the_lifespan_makes_a_request_pool_and_a_commit_pool(
    redis_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[float | None, BlockingConnectionPool]] = []
    disconnected: list[BlockingConnectionPool] = []
    fake = fake_pools(redis_server)

    def recording(
        settings: Settings, *, socket_timeout: float | None = redis_pool.SOCKET_TIMEOUT_S
    ) -> BlockingConnectionPool:
        pool = fake(settings, socket_timeout=socket_timeout)
        real_disconnect = pool.disconnect

        async def disconnect(*args: Any, **kwargs: Any) -> None:
            disconnected.append(pool)
            await real_disconnect(*args, **kwargs)

        monkeypatch.setattr(pool, "disconnect", disconnect)
        made.append((socket_timeout, pool))
        return pool

    settings = make_settings()
    app = create_app(settings, make_pool=recording)
    with TestClient(app, base_url="http://localhost") as client:
        assert [timeout for timeout, _ in made] == [redis_pool.SOCKET_TIMEOUT_S, None]
        (_, requests_pool), (_, commit_pool) = made
        state = app_state(client)
        assert state.settings is settings
        assert state.redis.connection_pool is requests_pool
        # The commit path bounds each exchange itself: its pool has no per-command timer.
        assert state.committer.pool is commit_pool
        assert disconnected == []
    assert disconnected == [commit_pool, requests_pool]


def test_the_lifespan_tells_the_server_the_node_id(make_client: ClientFactory) -> None:
    # The server's own answers (abacus/node/protocol_answers.py) read it from the lifespan's state.
    client = make_client(make_settings(NODE_ID="node-from-settings"))
    assert client.app_state[NODE_ID_KEY] == "node-from-settings"


def test_startup_logs_the_redis_url_without_its_password(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="abacus")
    make_client(make_settings(REDIS_URL="redis://:hunter2@redis:6379/0"))
    (started,) = [r for r in caplog.records if r.getMessage() == "node started"]
    assert started.__dict__["redis_url"] == "redis://***@redis:6379/0"
    assert started.__dict__["key"] == "abacus:sum"
    assert "hunter2" not in caplog.text


@pytest.mark.parametrize(("token", "warned"), [("", True), ("s3cret", False)])
def test_a_missing_admin_token_is_warned_about(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture, token: str, warned: bool
) -> None:
    make_client(make_settings(ABACUS_ADMIN_TOKEN=token))
    warnings = [r for r in caplog.records if "ABACUS_ADMIN_TOKEN is not set" in r.getMessage()]
    assert bool(warnings) is warned


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@redis:6379/0", "redis://***@redis:6379/0"),
        ("redis://user:p@ss@redis/0", "redis://***@redis/0"),
        ("rediss://user@redis:6380", "rediss://***@redis:6380"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_without_password(url: str, shown: str) -> None:
    assert _without_password(url) == shown


class _BuggyConnection(FakeConnection):
    """Fails the way a bug would: with an exception nobody handles."""

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug with a secret in it")


def test_an_unhandled_exception_is_the_api_s_json_500(
    make_client: ClientFactory, redis_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(make_pool=fake_pools(redis_server, _BuggyConnection))
    reply = client.get("/abacus/sum")
    assert reply.status_code == 500
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"error": "internal_error", "message": "internal error"}
    assert "secret" not in reply.text
    assert len(reply.headers.get_list("x-request-id")) == 1
    (logged,) = [r for r in caplog.records if r.name == "abacus.error"]
    assert logged.exc_info is not None


def test_other_http_errors_keep_their_status_and_detail() -> None:
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": b""}
    teapot = HTTPException(418, "short and stout", {"X-Why": "tea"})
    response = asyncio.run(_http_error(Request(scope), teapot))
    assert (response.status_code, response.headers["x-why"]) == (418, "tea")
    # Any other HTTPException still answers a code of the one list (a 4xx: bad_request).
    assert json.loads(bytes(response.body)) == {
        "error": "bad_request",
        "message": "short and stout",
    }


def test_python_dash_m_app_runs_one_uvicorn_node(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    for name, value in {"NODE_ID": "dev", "PORT": "8123", "LOG_FORMAT": "text"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HOST", raising=False)
    monkeypatch.delenv("ABACUS_ADD_DEADLINE_MS", raising=False)
    dunder_main.main()
    ((args, options),) = calls
    assert args == ("abacus.node.main:create_app",)
    assert options["factory"] is True
    assert (options["host"], options["port"]) == ("127.0.0.1", 8123)
    assert options["log_config"] == logging_config("info", "text", "dev")
    # Only the balancer's address may claim to forward for a client; a dev node trusts no one.
    assert options["proxy_headers"] is False
    # The same protocol and limits as under Gunicorn (abacus/node/worker.py).
    assert options["http"] is AbacusHttpProtocol
    assert options["limit_concurrency"] == CONCURRENCY_LIMIT
    assert options["timeout_keep_alive"] == KEEPALIVE_S
    assert options["timeout_graceful_shutdown"] == drain_timeout_s(GRACEFUL_TIMEOUT_S, 3.0)


def test_python_dash_m_app_refuses_a_bad_setting_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PORT", "eighty")
    with pytest.raises(SystemExit) as stopped:
        dunder_main.main()
    assert stopped.value.code == "abacus: PORT must be a whole number, got 'eighty'"
