"""Reads from replicated Redis: answered only by a primary with its replicas attached."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from abacus.node.sum_read import NotPrimary, SharedReads, read_stored_sum

PRIMARY_WITH_ONE = [b"master", 10, [[b"127.0.0.1", b"7001", b"10"]]]
LONE_PRIMARY = [b"master", 10, []]
REPLICA = [b"slave", b"127.0.0.1", 7000, b"connected", 10]


class Pipeline:
    def __init__(self, server: FakeRedis) -> None:
        self.server = server

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def get(self, key: str) -> None:
        pass

    def execute_command(self, *args: Any) -> None:
        assert args == ("ROLE",)

    async def execute(self) -> list[Any]:
        return [b"42", self.server.roles.pop(0)]


class Pool:
    def __init__(self) -> None:
        self.dropped = 0

    async def disconnect(self, inuse_connections: bool = True) -> None:
        assert not inuse_connections, "connections in use by other requests stay"
        self.dropped += 1


class FakeRedis:
    """Answers a GET + ROLE pipeline with the next role of `roles`."""

    def __init__(self, *roles: list[Any]) -> None:
        self.roles = list(roles)
        self.connection_pool = Pool()
        self.plain_gets = 0

    def pipeline(self, transaction: bool = True) -> Pipeline:
        assert not transaction
        return Pipeline(self)

    async def get(self, key: str) -> bytes:
        self.plain_gets += 1
        return b"7"


def read(server: FakeRedis, *, replicated: bool = True, replicas: int = 1) -> Any:
    fake: Any = server
    return asyncio.run(read_stored_sum(fake, "sum", replicated=replicated, replicas=replicas))


def test_a_primary_with_its_replicas_answers() -> None:
    server = FakeRedis(PRIMARY_WITH_ONE)
    assert read(server) == b"42"
    assert server.connection_pool.dropped == 0


def test_a_demoted_primary_is_left_and_the_read_asks_again() -> None:
    server = FakeRedis(REPLICA, PRIMARY_WITH_ONE)
    assert read(server) == b"42"
    assert server.connection_pool.dropped == 1, "the idle connections to it were dropped"


def test_a_primary_without_the_replicas_acks_need_is_never_read() -> None:
    server = FakeRedis(LONE_PRIMARY, LONE_PRIMARY, LONE_PRIMARY)
    with pytest.raises(NotPrimary):
        read(server)
    assert isinstance(NotPrimary("x"), RedisConnectionError), "the route answers it 503"
    assert server.connection_pool.dropped == 3


def test_with_no_acks_asked_a_lone_primary_answers() -> None:
    assert read(FakeRedis(LONE_PRIMARY), replicas=0) == b"42"


def test_without_sentinel_a_read_is_one_get() -> None:
    server = FakeRedis()
    assert read(server, replicated=False) == b"7"
    assert server.plain_gets == 1


class Gets:
    """A GET of the sum held until released, each returning the next value."""

    def __init__(self) -> None:
        self.sent = 0
        self.release = asyncio.Event()

    async def __call__(self) -> bytes:
        self.sent += 1
        value = str(self.sent).encode()
        await self.release.wait()
        self.release.clear()
        return value


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_reads_arriving_while_a_get_is_in_flight_share_the_next_one() -> None:
    async def test() -> None:
        gets = Gets()
        reads = SharedReads(gets)
        first = asyncio.create_task(reads.read())
        await settle()
        assert gets.sent == 1
        later = [asyncio.create_task(reads.read()) for _ in range(3)]
        await settle()
        assert gets.sent == 1, "one GET in flight at a time"
        gets.release.set()
        assert await first == b"1"
        await settle()
        assert gets.sent == 2, "the three that waited share one GET"
        gets.release.set()
        # Sent after they arrived: none of them is given the value read before it began.
        assert [await read for read in later] == [b"2", b"2", b"2"]

    asyncio.run(test())


def test_a_failed_get_fails_every_read_that_shared_it() -> None:
    async def test() -> None:
        async def down() -> bytes:
            raise RedisConnectionError("refused")

        reads = SharedReads(down)
        results = await asyncio.gather(reads.read(), reads.read(), return_exceptions=True)
        assert all(isinstance(r, RedisConnectionError) for r in results)

    asyncio.run(test())


def test_a_reader_that_goes_away_leaves_the_get_to_the_others() -> None:
    async def test() -> None:
        gets = Gets()
        reads = SharedReads(gets)
        leaving, staying = asyncio.create_task(reads.read()), asyncio.create_task(reads.read())
        await settle()
        leaving.cancel()
        await settle()
        gets.release.set()
        assert await staying == b"1"

    asyncio.run(test())
