"""The commit path's own wire encoding and commit ids, held to redis-py and a real redis-server."""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
from decimal import Decimal

import pytest
from redis.connection import Connection

import redis
from app import ledger, resp
from app.json_body import parse
from app.pending_add import PendingAdd, new_commit_id
from local_stack.processes import Process

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


def test_redis_server_reads_what_is_packed(standalone_redis: tuple[int, Process]) -> None:
    port, _ = standalone_redis
    value = '{"new_sum": 0.3, "node_id": "nœud"}'
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(resp.pack([("SET", "k:ü", value, "EX", 60), ("GET", "k:ü")]))
        replies = b""
        while not replies.endswith(b"\r\n") or replies.count(b"\r\n") < 3:
            replies += conn.recv(4096)
    encoded = value.encode()
    assert replies == b"+OK\r\n$%d\r\n%b\r\n" % (len(encoded), encoded)
    with redis.Redis(port=port) as client:
        assert client.ttl("k:ü") > 0


def _child_ids(queue: multiprocessing.Queue[str]) -> None:
    queue.put(new_commit_id())


def test_commit_ids_are_unique_in_a_process_and_across_a_fork() -> None:
    ours = {new_commit_id() for _ in range(1000)}
    assert len(ours) == 1000
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = context.Queue()
    child = context.Process(target=_child_ids, args=(queue,))
    child.start()
    theirs = queue.get(timeout=10)
    child.join(10)
    # The child continues the parent's counter, so only a prefix of its own keeps ids apart.
    assert theirs[:32] != next(iter(ours))[:32]
    assert theirs not in ours


@pytest.mark.parametrize("node_id", ["node-1", 'quote"and\\slash', "nœud"])
def test_add_body_is_json_with_exact_numbers(node_id: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        adds = [
            PendingAdd(Decimal(n), f"k{i}", 60, 0.0, loop.create_future())
            for i, n in enumerate(["0.1", "0.2", "-1e2", "1" + "0" * 29])
        ]
        result = ledger.AttemptResult()
        writes, total = ledger._plan(Decimal(0), adds, [None] * len(adds), node_id, result)
    finally:
        loop.close()
    bodies = [parse(body.encode()) for _, body in writes]
    assert [b["new_sum"] for b in bodies] == [
        Decimal("0.1"),
        Decimal("0.3"),
        Decimal("-99.7"),
        Decimal("9" * 27 + "00.3"),
    ]
    assert [b["added"] for b in bodies] == [Decimal(n) for n in ["0.1", "0.2", "-100", "1e29"]]
    assert {b["node_id"] for b in bodies} == {node_id}
    assert total == bodies[-1]["new_sum"]
