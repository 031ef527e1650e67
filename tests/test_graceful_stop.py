"""A node stopped with SIGTERM finishes the requests it holds, and commits their adds."""

from __future__ import annotations

import signal
import threading
import time

import redis
from local_stack import processes
from tests.api_client import Api, Reply
from tests.conftest import StackFactory


def test_sigterm_finishes_requests_in_flight(make_stack: StackFactory) -> None:
    stack = make_stack(nodes=1)
    node = stack.processes["node-1"]
    direct = f"http://127.0.0.1:{stack.config.node_port}"
    client = redis.Redis.from_url(stack.config.effective_redis_url)
    replies: list[Reply] = []

    def add(number: int) -> None:
        api = Api(direct)
        replies.append(api.add(number))
        api.close()

    # Writes paused: the adds are held in the node, mid-flight, when SIGTERM arrives.
    client.client_pause(1500, all=False)
    threads = [threading.Thread(target=add, args=(n,)) for n in range(1, 11)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    assert processes.signal_process(node, signal.SIGTERM)
    for thread in threads:
        thread.join(30)
    client.close()

    assert [r.status for r in replies] == [200] * 10
    assert processes.wait_gone(node, 30), "the node exits once its requests are done"
    with redis.Redis.from_url(stack.config.effective_redis_url) as after:
        assert int(after.get("abacus:sum") or 0) == 55
