"""Ports on 127.0.0.1: finding free ones, and refusing taken ones with a clear message."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from abacus.local_stack.errors import StackError

HOST = "127.0.0.1"
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def is_free(port: int) -> bool:
    """Nothing listens on it (connections of a stopped server in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def require_free(port: int, what: str) -> None:
    if not is_free(port):
        raise StackError(
            f"port {port} ({what}) is taken on {HOST}; choose another or stop what uses it"
        )


def free_ports(count: int) -> list[int]:
    """Distinct ports the kernel says are free now (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port_block(count: int, attempts: int = 200) -> int:
    """The first of `count` consecutive free ports (the stack numbers its nodes consecutively).

    Looked for above the kernel's ephemeral range first: inside it, every outgoing connection
    takes a port (and leaves it in TIME_WAIT after), so that after a benchmark's tens of
    thousands of connections a block of twelve free ones can be hard to find there."""
    above = _above_ephemeral_range()
    for _ in range(attempts):
        first = random.randint(*above) if above else free_ports(1)[0]
        if first + count < 65536 and all(is_free(first + i) for i in range(count)):
            return first
    raise StackError(f"found no {count} consecutive free ports")


def _above_ephemeral_range() -> tuple[int, int] | None:
    """The ports above Linux's ephemeral range, for a block's first port; None elsewhere."""
    try:
        _low, high = map(int, EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return None
    if high > 65535 - 1000:
        return None
    return high + 1, 65535 - 64
