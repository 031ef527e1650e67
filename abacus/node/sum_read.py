"""Reading the sum: reads that share a GET, and a GET repeated on a fresh connection when Redis
closed the pooled one (a restart, CLIENT KILL), since a read is safe to repeat, unlike an add.

With Sentinel (replicated Redis) the GET carries a ROLE in the same round trip, because the
server a pooled connection reached may no longer be the primary: redis-py asks the Sentinels only
when a connection connects, and a read, unlike a write, is never refused by a replica. Measured
on the nemesis's kill-redis fault on a replicated stack: the killed primary, started again before
the Sentinels had finished promoting a replica, came back as a primary of its own for seconds,
then as a replica, and nodes that had connected to it meanwhile read an old sum from it long
after the failover (reads below acknowledged adds, the final read among them). So a read is
answered only from a server that says it is the primary and, with ABACUS_MIN_REPLICA_ACKS = n,
has at least n replicas attached: a primary left behind by a failover has none, since they
follow the new one. Otherwise the pool's idle connections are dropped (the next ones ask the
Sentinels again) and the read is tried again, then refused (503 `unavailable`).

Reads of one worker share their GET, as adds share their transaction (group commit): while a GET
is in flight, the reads that arrive wait for the next one, which goes as soon as the first is
back, and each is answered with what it read. Every read still returns a value Redis held after
the read began (its GET is sent after it arrived), so no read misses an add acknowledged before
it began. Measured (profile of a worker serving reads at 64 clients): redis-py's command path,
its pool and its retry wrapper took over a quarter of a read's CPU; shared, a read costs that
once per batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from abacus.node import metrics

TRIES = 3


class NotPrimary(RedisConnectionError):
    """The server read from is not a primary that can be trusted with the sum now."""


async def read_stored_sum(redis: Redis, key: str, *, replicated: bool, replicas: int) -> Any:
    """The stored sum (bytes, or None when never written); `replicated`: Redis is behind
    Sentinel, so check the server's role; `replicas`: how many it must have attached."""
    for attempt in range(TRIES):
        try:
            if not replicated:
                return await redis.get(key)
            return await _read_from_primary(redis, key, replicas)
        except RedisConnectionError:
            if attempt == TRIES - 1:
                raise  # counted by the caller, which answers 503
            metrics.REDIS_ERRORS.labels("read").inc()
    raise AssertionError("unreachable")


async def _read_from_primary(redis: Redis, key: str, replicas: int) -> Any:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(key)
        pipe.execute_command("ROLE")
        value, role = await pipe.execute()
    if _is_primary(role, replicas):
        return value
    # The connections that reached this server are suspect: the next ones ask the Sentinels.
    await redis.connection_pool.disconnect(inuse_connections=False)
    raise NotPrimary("the Redis server read from is not a primary with its replicas")


def _is_primary(role: Any, replicas: int) -> bool:
    """ROLE on a primary: [b"master", offset, [[host, port, offset], ...]]."""
    kind = role[0].decode() if isinstance(role[0], bytes) else str(role[0])
    return kind == "master" and len(role[2]) >= replicas


class SharedReads:
    """At most one read of the sum in flight per worker; the reads that arrive meanwhile share
    the next one."""

    def __init__(self, read_once: Callable[[], Awaitable[Any]]) -> None:
        self._read_once = read_once
        # The batch waiting for the next GET: those who asked after the one in flight was sent.
        self._next: asyncio.Future[Any] | None = None
        self._reader: asyncio.Task[None] | None = None

    async def read(self) -> Any:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        batch = self._next
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_batches())
        # A request that goes away does not cancel the GET the others wait for.
        return await asyncio.shield(batch)

    async def _read_batches(self) -> None:
        while self._next is not None:
            batch, self._next = self._next, None
            try:
                value = await self._read_once()
            except Exception as exc:  # every reader of the batch answers it (503)
                batch.set_exception(exc)
                # Retrieved here in case every reader went away meanwhile.
                batch.exception()
            else:
                batch.set_result(value)
