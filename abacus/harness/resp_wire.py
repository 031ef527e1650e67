"""A bare RESP client over one socket, for timing Redis: pre-packed commands out, raw bytes in.

redis-py's parsing would be most of a loopback round trip; here a command list is sent once to
learn how long its replies are, and every timed repetition then only reads that many bytes.
"""

from __future__ import annotations

import socket
import time

from abacus.node import resp


def _reply_end(data: bytes, start: int) -> int | None:
    """Where the RESP reply starting at `start` ends, or None while it is incomplete."""
    line_end = data.find(b"\r\n", start)
    if line_end < 0:
        return None
    kind, header = data[start : start + 1], data[start + 1 : line_end]
    after = line_end + 2
    if kind in (b"+", b"-", b":"):
        return after
    length = int(header)
    if kind == b"$":
        if length < 0:
            return after
        end = after + length + 2
        return end if len(data) >= end else None
    if kind == b"*":
        position: int | None = after
        for _ in range(max(0, length)):
            assert position is not None
            position = _reply_end(data, position)
            if position is None:
                return None
        return position
    raise ValueError(f"not a RESP reply: {data[start : start + 20]!r}")


def _replies_end(data: bytes, count: int) -> int | None:
    position: int | None = 0
    for _ in range(count):
        assert position is not None
        position = _reply_end(data, position)
        if position is None:
            return None
    return position


class Wire:
    """One connection to Redis on 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        self.sock.close()

    def call(self, commands: list[resp.Command]) -> bytes:
        """Send the commands, return every reply's raw bytes (for learning their length)."""
        self.sock.sendall(resp.pack(commands))
        data = b""
        while (end := _replies_end(data, len(commands))) is None:
            data += self.sock.recv(65536)
        if end != len(data):
            raise ValueError("more bytes than the replies")
        return data

    def timed(self, payload: bytes, reply_bytes: int) -> float:
        """Seconds from the write of `payload` to the last of `reply_bytes` bytes."""
        started = time.perf_counter()
        self.sock.sendall(payload)
        got = 0
        while got < reply_bytes:
            got += len(self.sock.recv(65536))
        return time.perf_counter() - started
