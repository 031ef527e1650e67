"""The worker's Redis connection pool: short timeouts and no automatic retries.

redis-py's defaults would re-send a failed command up to ten times with 5 s timeouts. A re-sent
EXEC is exactly the double count this service must never make, and a dead Redis must be reported
within its 1.5 s (docs/api.md), so every retry decision is the service's own.

The pool reaches Redis at `REDIS_URL`, or, with `REDIS_SENTINELS`, whatever the Sentinels call the
primary (sentinel_pool.py). Either way it is a blocking pool: a request that finds every
connection in use waits for one (up to POOL_TIMEOUT_S) rather than failing at once.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from abacus.node import replica_acks, sentinel_pool
from abacus.node.settings import Settings

CONNECT_TIMEOUT_S = 0.5
# Longest wait for one reply; an EXEC under load takes milliseconds, a paused Redis forever.
SOCKET_TIMEOUT_S = 0.5
# Longest wait for a free connection when every one is busy.
POOL_TIMEOUT_S = 1.0
MAX_CONNECTIONS = 512


class _CutShortSafePool(BlockingConnectionPool):
    """A pool whose connections never come back half set up.

    redis-py disconnects a connection whose handshake fails with a Redis error, but not one whose
    handshake is cancelled (our timers cancel it while Redis is stalled): that connection would go
    back to the pool marked connected, with the AUTH reply still to come, and the next command on
    it would read that reply as its own."""

    async def ensure_connection(self, connection: AbstractConnection) -> None:
        try:
            await super().ensure_connection(connection)
        except BaseException:
            await connection.disconnect(nowait=True)
            raise


class _SentinelPool(sentinel_pool.BoundedDiscovery, _CutShortSafePool):
    """redis-py's SentinelConnectionPool (with discovery bounded) is a plain pool, which fails
    at once when every connection is in use; with BlockingConnectionPool behind it in the method
    order, getting and releasing a connection are the blocking pool's, as with a lone Redis."""


def make_pool(
    settings: Settings, *, socket_timeout: float | None = SOCKET_TIMEOUT_S
) -> BlockingConnectionPool:
    """`socket_timeout=None` is for callers that bound a whole exchange themselves (the commit
    path, under `asyncio.timeout`): redis-py then skips its per-command timers, a task per send
    among them. That pool's connections also learn, as they connect, whether the server has
    WAITAOF (replica_acks.py), when the nodes wait for replicas at all."""
    options: dict[str, Any] = {
        "max_connections": MAX_CONNECTIONS,
        "timeout": POOL_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_timeout": socket_timeout,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }
    if settings.redis_password is not None:
        options["password"] = settings.redis_password
    if socket_timeout is None and settings.min_replica_acks > 0:
        options["redis_connect_func"] = replica_acks.handshake
    if settings.redis_sentinels:
        return _SentinelPool(  # type: ignore[no-untyped-call]
            settings.redis_sentinel_master,
            sentinel_pool.sentinels(settings),
            connection_class=sentinel_pool.PrimaryConnection,
            **options,
        )
    return _CutShortSafePool.from_url(settings.redis_url, **options)


async def close_pool(pool: BlockingConnectionPool) -> None:
    """Close every connection of the pool, and its connections to the Sentinels if it has any."""
    await pool.disconnect()
    if isinstance(pool, sentinel_pool.BoundedDiscovery):
        await pool.close_sentinels()


def make_client(pool: BlockingConnectionPool) -> Redis:
    return Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
