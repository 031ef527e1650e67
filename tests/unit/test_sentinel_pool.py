"""Redis through Sentinel: the Sentinels asked with short, bounded waits, and READONLY kept a
refusal rather than a lost connection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio.connection import AbstractConnection, Connection
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from abacus.node import redis_pool, sentinel_pool
from tests.unit.conftest import make_settings

SENTINELS = "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379"
# Fails a test whose wait is not bounded by the code under test, long after any bound of its own.
NEVER_S = 10.0


def sentinel_settings(**env: str) -> Any:
    return make_settings(REDIS_SENTINELS=SENTINELS, **env)


def test_every_sentinel_is_asked_with_short_timeouts_and_no_retries() -> None:
    manager = sentinel_pool.sentinels(sentinel_settings())
    assert len(manager.sentinels) == 3
    for client in manager.sentinels:
        options = client.connection_pool.connection_kwargs
        assert (options["host"], options["port"]) in {
            ("sentinel-1", 26379),
            ("sentinel-2", 26379),
            ("sentinel-3", 26379),
        }
        assert options["socket_connect_timeout"] == sentinel_pool.SENTINEL_TIMEOUT_S
        assert options["socket_timeout"] == sentinel_pool.SENTINEL_TIMEOUT_S
        retry = client.get_retry()
        assert retry is not None
        assert retry.get_retries() == 0, "redis-py's clients retry three times by default"
    assert sentinel_pool.DISCOVERY_TIMEOUT_S < 1.0, "inside the commit lane's connect budget"


def test_discovery_is_bounded_as_a_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sentinels asked one after another add up their timeouts; the whole ends as a stall."""

    async def never_answers(self: Sentinel, service_name: str) -> tuple[str, int]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(Sentinel, "discover_master", never_answers)

    async def discover() -> None:
        pool = redis_pool.make_pool(sentinel_settings())
        assert isinstance(pool, sentinel_pool.BoundedDiscovery)
        try:
            async with asyncio.timeout(NEVER_S):
                await pool.get_master_address()
        finally:
            await redis_pool.close_pool(pool)

    with pytest.raises(RedisTimeoutError, match="no Sentinel named the primary"):
        asyncio.run(discover())


def test_a_readonly_reply_stays_a_refusal_and_the_next_use_asks_the_sentinels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """redis-py's Sentinel connection makes READONLY a ConnectionError, which the commit path
    would have to read as "the EXEC may have counted"; this connection raises it as it is."""

    async def readonly(self: Connection, *args: Any, **kwargs: Any) -> Any:
        raise ReadOnlyError("You can't write against a read only replica.")

    monkeypatch.setattr(Connection, "read_response", readonly)
    disconnected: list[Connection] = []

    async def disconnect(self: Connection, *args: Any, **kwargs: Any) -> None:
        disconnected.append(self)

    monkeypatch.setattr(Connection, "disconnect", disconnect)

    async def read(connection_class: type[SentinelManagedConnection]) -> None:
        pool = redis_pool.make_pool(sentinel_settings())
        pool.connection_class = connection_class
        try:
            connection = pool.make_connection()  # type: ignore[no-untyped-call]
            await connection.read_response()
        finally:
            await redis_pool.close_pool(pool)

    with pytest.raises(ReadOnlyError):
        asyncio.run(read(sentinel_pool.PrimaryConnection))
    assert len(disconnected) == 1, "disconnected: its next use connects, asking the Sentinels"
    # Why the class exists: redis-py's own would make the refusal a lost connection.
    with pytest.raises(RedisConnectionError, match="previous master is now a slave"):
        asyncio.run(read(SentinelManagedConnection))


def test_closing_the_pool_closes_its_connections_to_the_sentinels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[Sentinel] = []

    async def aclose(self: Sentinel) -> None:
        closed.append(self)

    monkeypatch.setattr(Sentinel, "aclose", aclose)
    pool = redis_pool.make_pool(sentinel_settings())
    asyncio.run(redis_pool.close_pool(pool))
    assert closed == [pool.sentinel_manager]  # type: ignore[attr-defined]


def test_a_reconnect_before_a_send_asks_the_sentinels_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """redis-py reconnects a dropped connection inside send_packed_command through
    `connect_check_health`, which skips its Sentinel connection's discovery: the commit lane's
    connection, kept across attempts, would dial the old primary for as long as it has work."""
    dialled: list[tuple[str, int]] = []

    async def dial(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        dialled.append((self.host, self.port))  # type: ignore[attr-defined]

    monkeypatch.setattr(AbstractConnection, "connect_check_health", dial)

    async def reconnect(connection_class: type[SentinelManagedConnection]) -> None:
        primaries = iter([("old-primary", 6379), ("new-primary", 6379)])

        async def discover(self: object) -> tuple[str, int]:
            return next(primaries)

        monkeypatch.setattr(sentinel_pool.BoundedDiscovery, "get_master_address", discover)
        pool = redis_pool.make_pool(sentinel_settings(), socket_timeout=None)
        pool.connection_class = connection_class
        try:
            connection = pool.make_connection()  # type: ignore[no-untyped-call]
            await connection.connect()  # as the pool connects one it hands out
            # ... the primary dies; the lane's next send reconnects the same connection:
            await connection.connect_check_health(check_health=False)
        finally:
            await redis_pool.close_pool(pool)

    asyncio.run(reconnect(sentinel_pool.PrimaryConnection))
    assert dialled == [("old-primary", 6379), ("new-primary", 6379)]
    dialled.clear()
    asyncio.run(reconnect(SentinelManagedConnection))
    assert dialled == [("old-primary", 6379), ("old-primary", 6379)], "why the override exists"
