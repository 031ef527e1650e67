"""The app of a real node whose every Redis connection fails with a bug, not a Redis error:
the app factory Gunicorn is given on its command line in tests/test_internal_error.py."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.connection import Connection
from starlette.types import ASGIApp

from abacus.node import main, redis_pool
from abacus.node.settings import Settings

SECRET = "a bug with a secret in it"


class _BuggyConnection(Connection):
    async def connect(self) -> None:
        raise RuntimeError(SECRET)


def _buggy_pools(
    settings: Settings, *, socket_timeout: float | None = redis_pool.SOCKET_TIMEOUT_S
) -> BlockingConnectionPool:
    """The real pools (timeouts, no retries), whose connections raise instead of connecting."""
    pool = redis_pool.make_pool(settings, socket_timeout=socket_timeout)
    pool.connection_class = _BuggyConnection
    return pool


def create_app() -> ASGIApp:
    return main.create_app(make_pool=_buggy_pools)
