"""The ambiguous EXEC, forced for real: connections cut right after (or just before) EXEC.

The node cannot tell the two apart; it must neither count an add twice nor lose one.
"""

from __future__ import annotations

import pytest

from abacus.local_stack.processes import Process
from tests.add_chain import assert_one_chain
from tests.api_client import Api
from tests.conftest import StackFactory
from tests.cutting_proxy import cutting_proxy
from tests.load import add_concurrently
from tests.metrics_text import scrape, value

pytestmark = pytest.mark.stack


def test_cut_exec_neither_lost_nor_counted_twice(
    make_stack: StackFactory, standalone_redis: tuple[int, Process]
) -> None:
    redis_port, _ = standalone_redis
    with cutting_proxy(redis_port, every=3, modes=("after", "before")) as proxy:
        stack = make_stack(nodes=1, redis_url=f"redis://127.0.0.1:{proxy.port}/0")
        numbers = [str(n) for n in range(1, 301)]
        replies = add_concurrently(stack.config.url, numbers, clients=8)
        assert [r.status for r in replies] == [200] * len(numbers), "every cut is resolved"
        assert "after" in proxy.cuts
        assert "before" in proxy.cuts

        assert_one_chain(replies)
        assert Api(stack.config.url).sum() == sum(range(1, 301))

        node_metrics = scrape(stack.config.node_port)
        assert value(node_metrics, "abacus_ambiguous_commits_total") > 0
        assert value(node_metrics, "abacus_adds_committed_total") == 300
