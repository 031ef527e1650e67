"""The balancer's per-client rate limit: a burst gets 429s, other clients do not notice."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import StackFactory
from tests.raw_http import exchange

pytestmark = pytest.mark.stack

GET_SUM = b"GET /abacus/sum HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def test_a_burst_from_one_client_is_limited_others_are_not(make_stack: StackFactory) -> None:
    stack = make_stack(nodes=1, rate=(5, 5))
    port = stack.config.port
    with ThreadPoolExecutor(max_workers=20) as pool:
        burst = list(pool.map(lambda _: exchange(port, GET_SUM), range(60)))
    statuses = [r.status for r in burst]
    limited = [r for r in burst if r.status == 429]
    assert limited, f"a burst of 60 over 5/s with burst 5 is limited: {statuses}"
    assert statuses.count(200) >= 5
    for reply in limited:
        assert json.loads(reply.body)["error"] == "rate_limited"
        assert "retry-after: 1" in reply.head.lower()
        assert "x-request-id:" in reply.head.lower()
    # Another address (Linux routes all of 127.0.0.0/8 to loopback) has its own allowance.
    other = exchange(port, GET_SUM, source="127.0.0.3")
    assert other.status == 200
