"""Group commit, observed (not timed): batches form, every add keeps its own prefix total,
cancelled requests leak nothing, and one transaction per request still works."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from abacus.local_stack import LocalStack
from tests.add_chain import assert_one_chain
from tests.api_client import Api
from tests.conftest import StackFactory
from tests.load import add_concurrently
from tests.metrics_text import scrape, value
from tests.waiting import wait_for_pending_adds

pytestmark = pytest.mark.stack


def histogram(port: int) -> tuple[float, float, float]:
    """(count, sum, count of batches of one) of the batch-size histogram of one node."""
    text = scrape(port)
    ones = value(text, "abacus_commit_batch_size_bucket", le="1.0")
    count = value(text, "abacus_commit_batch_size_count")
    return count, value(text, "abacus_commit_batch_size_sum"), ones


def test_batches_form_under_concurrency(api: Api, stack: LocalStack) -> None:
    before = {p: histogram(p) for p in stack.config.node_ports}
    replies = add_concurrently(stack.config.url, [str(n) for n in range(1, 1501)], clients=64)
    assert all(r.status == 200 for r in replies)
    assert assert_one_chain(replies) == api.sum()
    transactions = adds = 0.0
    for port in stack.config.node_ports:
        count, total, _ = histogram(port)
        transactions += count - before[port][0]
        adds += total - before[port][1]
    assert adds == 1500, "every add rode in exactly one committed transaction"
    assert transactions < adds, "batches of more than one add formed"


def test_one_transaction_per_request_still_works(make_stack: StackFactory) -> None:
    stack = make_stack(nodes=2, ABACUS_MAX_BATCH="1")
    replies = add_concurrently(stack.config.url, [str(n) for n in range(1, 401)], clients=16)
    assert all(r.status == 200 for r in replies)
    assert assert_one_chain(replies) == Api(stack.config.url).sum() == sum(range(1, 401))
    for port in stack.config.node_ports:
        count, total, ones = histogram(port)
        assert count == total == ones, "every transaction carried exactly one add"


def test_cancelled_requests_leak_nothing(make_stack: StackFactory) -> None:
    stack = make_stack(nodes=1)
    node = f"http://127.0.0.1:{stack.config.node_port}"
    client = redis.Redis.from_url(stack.config.effective_redis_url)
    baseline = len(client.client_list())

    def impatient_add(number: int) -> None:
        # The client gives up; the add is in the node's hands.
        with contextlib.suppress(requests.RequestException):
            # 5 s to connect (the request must be sent), then gone after 0.2 s of waiting.
            requests.post(f"{node}/abacus/number", json={"number": number}, timeout=(5, 0.2))

    cancelled = list(range(1, 61))
    for round_start in range(0, 60, 20):
        client.client_pause(600, all=False)
        with ThreadPoolExecutor(max_workers=20) as pool:
            list(pool.map(impatient_add, cancelled[round_start : round_start + 20]))
    after = add_concurrently(node, [str(n) for n in range(100, 160)], clients=30)
    assert all(r.status == 200 for r in after), "the pool still has connections to give"
    total = sum(cancelled) + sum(range(100, 160))
    assert wait_for_pending_adds([stack.config.node_port], 0), "the node answered every add"
    assert Api(node).sum() == total, "each cancelled add was applied once, none lost"
    assert len(client.client_list()) <= baseline + 8, "no connection leaked"
    client.close()
