"""The worker's Redis pool: short timeouts and no retries of redis-py's own."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

import pytest
from fakeredis import FakeServer
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError

from abacus.node import redis_pool, replica_acks, sentinel_pool
from tests.unit.conftest import FakeConnection, fake_pools, make_settings


def test_the_pool_s_limits_and_timeouts() -> None:
    pool = redis_pool.make_pool(make_settings(REDIS_URL="redis://redis.internal:6390/3"))
    assert isinstance(pool, BlockingConnectionPool)
    assert pool.max_connections == redis_pool.MAX_CONNECTIONS
    assert pool.timeout == redis_pool.POOL_TIMEOUT_S
    options = pool.connection_kwargs
    assert (options["host"], options["port"], options["db"]) == ("redis.internal", 6390, 3)
    assert options["socket_connect_timeout"] == redis_pool.CONNECT_TIMEOUT_S
    assert options["socket_timeout"] == redis_pool.SOCKET_TIMEOUT_S
    assert options["health_check_interval"] == 0
    assert options["retry"].get_retries() == 0, "a re-sent EXEC could count an add twice"
    assert "password" not in options


def test_the_commit_pool_has_no_per_command_timeout() -> None:
    pool = redis_pool.make_pool(make_settings(), socket_timeout=None)
    assert pool.connection_kwargs["socket_timeout"] is None


def test_the_password_comes_from_the_settings(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret")
    pool = redis_pool.make_pool(make_settings(REDIS_PASSWORD_FILE=str(secret)))
    assert pool.connection_kwargs["password"] == "s3cret"


def test_a_refused_connection_fails_at_once_without_retries(no_network: list[object]) -> None:
    settings = make_settings(REDIS_URL="redis://127.0.0.1:6379/0")

    async def read() -> None:
        client = redis_pool.make_client(redis_pool.make_pool(settings))
        try:
            await client.get("abacus:sum")
        finally:
            await client.aclose()
            await client.connection_pool.disconnect()

    with pytest.raises(RedisConnectionError):
        asyncio.run(read())
    assert no_network == [("127.0.0.1", 6379)], "one try, no retry of redis-py's own"
    no_network.clear()  # the guard refused it, as it should


def test_the_client_retries_nothing_either() -> None:
    retry = redis_pool.make_client(redis_pool.make_pool(make_settings())).get_retry()
    assert retry is not None
    assert retry.get_retries() == 0


class _StallingHandshake(FakeConnection):
    """Connects, then never finishes its handshake (a Redis stalled right after accept)."""

    stalled: ClassVar[list[FakeConnection]] = []

    async def on_connect_check_health(self, check_health: bool = True) -> None:
        _StallingHandshake.stalled.append(self)
        await asyncio.Event().wait()


def test_a_handshake_cut_short_never_goes_back_to_the_pool_connected() -> None:
    pool = fake_pools(FakeServer(), _StallingHandshake)(make_settings())

    async def cut_short() -> None:
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await pool.get_connection()  # type: ignore[no-untyped-call]
        finally:
            await pool.disconnect()

    asyncio.run(cut_short())
    (connection,) = _StallingHandshake.stalled
    # Left connected, its next command would read the handshake's late reply as its own.
    assert not connection.is_connected


SENTINELS = "sentinel-1:26379,sentinel-2:26379"


def test_through_sentinel_the_pool_has_the_same_limits_timeouts_and_no_retries() -> None:
    settings = make_settings(REDIS_SENTINELS=SENTINELS, REDIS_SENTINEL_MASTER="ledger")
    pool = redis_pool.make_pool(settings)
    assert isinstance(pool, BlockingConnectionPool)
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "ledger"
    assert pool.is_master
    assert pool.connection_class is sentinel_pool.PrimaryConnection
    assert pool.max_connections == redis_pool.MAX_CONNECTIONS
    assert pool.timeout == redis_pool.POOL_TIMEOUT_S
    options = pool.connection_kwargs
    assert options["socket_connect_timeout"] == redis_pool.CONNECT_TIMEOUT_S
    assert options["socket_timeout"] == redis_pool.SOCKET_TIMEOUT_S
    assert options["retry"].get_retries() == 0, "a re-sent EXEC could count an add twice"


def test_through_sentinel_a_request_waits_for_a_free_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """redis-py's SentinelConnectionPool fails at once when every connection is in use; this
    one waits for one to come back, as the pool of a lone Redis does."""

    async def connected(self: object, connection: object) -> None:
        pass  # no Sentinel, no Redis: this test is about the pool's bookkeeping

    monkeypatch.setattr(BlockingConnectionPool, "ensure_connection", connected)

    async def contend() -> bool:
        pool = redis_pool.make_pool(make_settings(REDIS_SENTINELS=SENTINELS))
        pool.max_connections = 1
        held = await pool.get_connection()  # type: ignore[no-untyped-call]
        waiting = asyncio.create_task(pool.get_connection())  # type: ignore[no-untyped-call]
        await asyncio.sleep(0)
        still_waiting = not waiting.done()
        await pool.release(held)
        assert await waiting is held
        await redis_pool.close_pool(pool)
        return still_waiting

    assert asyncio.run(contend()), "it waited instead of raising 'Too many connections'"


def test_only_the_commit_pool_learns_about_waitaof_and_only_when_acks_are_asked() -> None:
    asked = make_settings(ABACUS_MIN_REPLICA_ACKS="1")
    commit_pool = redis_pool.make_pool(asked, socket_timeout=None)
    assert commit_pool.connection_kwargs["redis_connect_func"] is replica_acks.handshake
    assert "redis_connect_func" not in redis_pool.make_pool(asked).connection_kwargs
    plain = redis_pool.make_pool(make_settings(), socket_timeout=None)
    assert "redis_connect_func" not in plain.connection_kwargs
