"""A node stopped with SIGTERM finishes the requests it holds, and commits their adds."""

from __future__ import annotations

import signal
import socket
import threading

import pytest
import redis

from abacus.local_stack import processes
from tests.api_client import Api, Reply
from tests.conftest import StackFactory
from tests.waiting import wait_for_pending_adds, wait_until

pytestmark = pytest.mark.stack

# Writes stay paused until the test ends the pause itself; this only bounds a test that dies.
PAUSE_MS = 60_000


def refuses_connections(port: int) -> bool:
    """True once nothing listens on the port: the master and every worker have closed it, so
    each of them has begun its graceful stop."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_sigterm_finishes_requests_in_flight(make_stack: StackFactory) -> None:
    # The adds must still be waiting when the test lets them commit: a deadline longer than the
    # default 3 s (within what the balancer's proxy_read_timeout allows) for a loaded machine.
    stack = make_stack(nodes=1, ABACUS_ADD_DEADLINE_MS="5000")
    node = stack.processes["node-1"]
    port = stack.config.node_port
    direct = f"http://127.0.0.1:{port}"
    client = redis.Redis.from_url(stack.config.effective_redis_url)
    replies: list[Reply] = []

    def add(number: int) -> None:
        api = Api(direct, timeout=60)
        replies.append(api.add(number))
        api.close()

    # Writes paused: the adds are held in the node, mid-flight, when SIGTERM arrives.
    client.client_pause(PAUSE_MS, all=False)
    threads = [threading.Thread(target=add, args=(n,)) for n in range(1, 11)]
    try:
        for thread in threads:
            thread.start()
        arrived = wait_for_pending_adds([port], 10, give_up=lambda: bool(replies))
        assert arrived, f"the 10 adds reached the node and wait there (answered: {replies})"
        assert processes.signal_process(node, signal.SIGTERM)
        assert wait_until(lambda: refuses_connections(port)), "the node began its graceful stop"
    finally:
        client.client_unpause()
        client.close()
    for thread in threads:
        thread.join(60)

    assert [r.status for r in replies] == [200] * 10
    assert processes.wait_gone(node, 30), "the node exits once its requests are done"
    with redis.Redis.from_url(stack.config.effective_redis_url) as after:
        assert int(after.get("abacus:sum") or 0) == 55
