"""Group commit, observed (not timed): batches form, every add keeps its own prefix total,
cancelled requests leak nothing, and one transaction per request still works."""

from __future__ import annotations

import contextlib
import re
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import requests

import redis
from local_stack import LocalStack
from tests.api_client import Api, Reply
from tests.conftest import StackFactory
from tests.load import add_concurrently


def histogram(port: int) -> tuple[float, float, float]:
    """(count, sum, count of batches of one) of the batch-size histogram of one node."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text

    def sample(name: str) -> float:
        return sum(float(v) for v in re.findall(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE))

    ones = sample(r'abacus_commit_batch_size_bucket\{le="1\.0"\}')
    return sample("abacus_commit_batch_size_count"), sample("abacus_commit_batch_size_sum"), ones


def assert_one_chain(replies: list[Reply]) -> Decimal:
    previous = Decimal(0)
    for new_sum, added in sorted((r.body["new_sum"], r.body["added"]) for r in replies):
        assert new_sum - previous == added, "each add's new_sum is its own prefix total"
        previous = new_sum
    return previous


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
            requests.post(f"{node}/abacus/number", json={"number": number}, timeout=0.2)

    cancelled = list(range(1, 61))
    for round_start in range(0, 60, 20):
        client.client_pause(600, all=False)
        with ThreadPoolExecutor(max_workers=20) as pool:
            list(pool.map(impatient_add, cancelled[round_start : round_start + 20]))
    after = add_concurrently(node, [str(n) for n in range(100, 160)], clients=30)
    assert all(r.status == 200 for r in after), "the pool still has connections to give"
    total = sum(cancelled) + sum(range(100, 160))
    assert Api(node).sum() == total, "each cancelled add was applied once, none lost"
    assert len(client.client_list()) <= baseline + 8, "no connection leaked"
    client.close()
