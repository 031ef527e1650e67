"""Free ports for the local stacks."""

from __future__ import annotations

import socket

from abacus.local_stack import ports


def test_a_block_is_found_above_the_ephemeral_range_where_connections_take_no_ports() -> None:
    above = ports._above_ephemeral_range()
    first = ports.free_port_block(12)
    assert all(ports.is_free(first + i) for i in range(12))
    if above is not None:
        assert above[0] <= first <= above[1]


def test_a_port_something_listens_on_is_not_free() -> None:
    with socket.socket() as server:
        server.bind((ports.HOST, 0))
        server.listen()
        assert not ports.is_free(server.getsockname()[1])
