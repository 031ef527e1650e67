"""Concurrent adds through the balancer: exact sums, round robin, one order of all adds."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest

from abacus.local_stack import LocalStack
from tests.add_chain import assert_one_chain
from tests.api_client import Api
from tests.load import add_concurrently

pytestmark = pytest.mark.stack


def test_mixed_adds_from_many_clients_sum_exactly(api: Api, stack: LocalStack) -> None:
    rng = random.Random(2)
    numbers = [
        f"{rng.choice('-+').replace('+', '')}{rng.randint(0, 10**6)}.{rng.randint(0, 999):03d}"
        for _ in range(2400)
    ]
    replies = add_concurrently(stack.config.url, numbers, clients=40)
    assert [r.status for r in replies] == [200] * len(numbers)
    assert api.sum() == sum((Decimal(n) for n in numbers), Decimal(0))
    served = Counter(r.body["node_id"] for r in replies)
    assert set(served) == {"node-1", "node-2", "node-3"}
    for node, count in served.items():
        assert count >= len(numbers) / 4, f"{node} served only {count} (round robin)"


def test_positive_adds_form_one_chain(api: Api, stack: LocalStack) -> None:
    numbers = [str(n) for n in random.Random(3).sample(range(1, 10**9), 2000)]
    replies = add_concurrently(stack.config.url, numbers, clients=32)
    assert all(r.status == 200 for r in replies)
    last = assert_one_chain(replies)
    new_sums = {r.body["new_sum"] for r in replies}
    assert len(new_sums) == len(replies), "no two adds saw the same sum"
    assert api.sum() == last
