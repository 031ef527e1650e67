"""The commit path's own wire encoding, read by a real redis-server (tests/unit/test_resp.py holds
it to redis-py's packer)."""

from __future__ import annotations

import socket

import pytest
import redis

from abacus.local_stack.processes import Process
from abacus.node import resp

pytestmark = pytest.mark.stack


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
