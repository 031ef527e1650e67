"""Acknowledged means replicated: which command waits for the replicas, for how long, and what
its reply means."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.exceptions import ResponseError

from abacus.node import replica_acks
from abacus.node.replica_acks import ReplicaAcks
from tests.unit.conftest import make_settings

ACKS = ReplicaAcks(1, "abacus:sum:ack:unit-node")


class HandshakeConnection:
    """What `handshake` uses of a redis-py connection; answers COMMAND INFO with `reply`."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.sent: list[tuple[Any, ...]] = []
        self.handshaken = False

    async def on_connect(self) -> None:
        self.handshaken = True

    async def send_command(self, *args: Any, check_health: bool = True) -> None:
        self.sent.append(args)

    async def read_response(self) -> Any:
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def handshake(reply: Any) -> Any:
    connection = HandshakeConnection(reply)
    asyncio.run(replica_acks.handshake(connection))  # type: ignore[arg-type]
    assert connection.handshaken, "redis-py's own handshake (AUTH, ...) comes first"
    assert connection.sent == [("COMMAND", "INFO", "WAITAOF")]
    return connection


def test_a_server_with_waitaof_is_waited_for_on_disk() -> None:
    connection = handshake([[b"waitaof", 4, [b"noscript"], 0, 0, 0]])
    assert replica_acks.has_waitaof(connection)
    assert ACKS.command(connection, 0.5) == ("WAITAOF", 0, 1, 300)


@pytest.mark.parametrize("reply", [[None], ResponseError("NOPERM this user has no permissions")])
def test_a_server_without_it_is_waited_for_with_wait(reply: Any) -> None:
    connection = handshake(reply)
    assert not replica_acks.has_waitaof(connection)
    assert ACKS.command(connection, 0.5) == ("WAIT", 1, 300)


def test_the_wait_ends_inside_its_round_trip_and_never_means_forever() -> None:
    connection = handshake([None])
    timeout_ms = ACKS.command(connection, 0.2)[-1]
    assert isinstance(timeout_ms, int)
    assert 0 < timeout_ms < 200
    assert ACKS.command(connection, 0.0001)[-1] == 1, "0 would be forever to Redis"


@pytest.mark.parametrize(
    ("reply", "covered"),
    [
        (1, True),
        (2, True),
        (0, False),
        ([1, 1], True),
        ([1, 0], False),
        (ResponseError("ERR WAIT cannot be used with replica instances"), False),
    ],
)
def test_what_a_reply_confirms(reply: Any, covered: bool) -> None:
    assert ACKS.covered(reply) is covered


def test_the_probe_is_a_short_lived_write_of_the_node_s_own_key() -> None:
    assert ACKS.probe() == ("SET", ACKS.probe_key, "1", "PX", replica_acks.PROBE_TTL_MS)


def test_settings_decide_whether_and_how_many() -> None:
    assert replica_acks.for_settings(make_settings()) is None
    acks = replica_acks.for_settings(make_settings(ABACUS_MIN_REPLICA_ACKS="2", ABACUS_KEY="t"))
    assert acks == ReplicaAcks(2, "t:ack:unit-node")
