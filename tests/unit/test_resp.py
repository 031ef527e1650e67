"""The commit path's RESP encoder, held to redis-py's and to a server that parses it."""

from __future__ import annotations

import asyncio
import math

import pytest
from fakeredis import FakeServer
from redis.connection import Connection

from abacus.node import resp
from tests.unit.conftest import FakeConnection

COMMANDS: list[resp.Command] = [
    ("MULTI",),
    ("SET", "abacus:sum", "-12.5"),
    ("SET", "abacus:sum:idem:clé-ü", '1\n{"node_id": "nœud"}', "EX", 86_400),
    ("SET", b"raw:\x00\xff", b"", "EX", 1),
    ("MGET", "a", "", "c"),
    ("EXEC",),
]


def test_packing_matches_redis_py() -> None:
    expected = b"".join(Connection().pack_commands(COMMANDS))  # type: ignore[no-untyped-call]
    assert resp.pack(COMMANDS) == expected


@pytest.mark.parametrize(
    ("command", "wire"),
    [
        (("PING",), b"*1\r\n$4\r\nPING\r\n"),
        (("GET", "é"), b"*2\r\n$3\r\nGET\r\n$2\r\n\xc3\xa9\r\n"),
        (("EX", -1), b"*2\r\n$2\r\nEX\r\n$2\r\n-1\r\n"),
        (("SET", "k", b"a\r\nb"), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n"),
    ],
)
def test_lengths_count_bytes_not_characters(command: resp.Command, wire: bytes) -> None:
    assert resp.pack([command]) == wire


def test_nothing_packs_to_nothing() -> None:
    assert resp.pack([]) == b""


def test_a_server_reads_what_is_packed() -> None:
    value = '{"new_sum": 0.3, "node_id": "nœud"}\r\n'

    async def exchange() -> list[object]:
        connection = FakeConnection(server=FakeServer())
        try:
            commands: list[resp.Command] = [("SET", "k:ü", value, "EX", 60), ("GET", "k:ü")]
            await connection.send_packed_command(resp.pack(commands))
            return [await connection.read_response(timeout=math.inf) for _ in commands]
        finally:
            await connection.disconnect()

    assert asyncio.run(exchange()) == [b"OK", value.encode()]
