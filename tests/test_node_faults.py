"""A node lost, restarted or stalled under load: no client sees an error, every add counts once.

Each test runs the consistency checker against a fresh stack while the fault is injected, until
the fault is over and some adds after it, and judges the whole history: every add acknowledged,
the final sum exactly the acknowledged adds.
"""

from __future__ import annotations

import signal
import time

import pytest

from abacus.local_stack import processes
from tests import metrics_text
from tests.api_client import Api
from tests.conftest import StackFactory
from tests.fault_support import (
    acknowledged_after,
    assert_exact_sum,
    assert_no_client_errors,
    assert_only_truncated_errors,
    background_check,
    explain,
    nginx_access,
    node_request_ids,
    upstream_tries,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.stack

# The stalled-node test's balancer gives up on a silent node after this (default 8 s); the
# nodes' deadline is short enough for it (deadline + 0.8 s grace + 1 s margin < the timeout).
PROXY_READ_TIMEOUT_S = 5.0
SHORT_DEADLINE_MS = "3000"

# Requests invoked this long after the SIGKILL can no longer have reached the killed node.
KILL_SETTLED_S = 1.0


def test_node_killed_with_sigkill_under_load(make_stack: StackFactory) -> None:
    stack = make_stack()
    victim = stack.processes["node-2"]
    with background_check(stack, concurrency=32, seed=61) as run:
        run.wait_for_adds(300)
        assert not run.done()
        killed_at = time.monotonic()
        assert processes.signal_group(victim, signal.SIGKILL)
        assert processes.wait_gone(victim, 5), "master and workers are gone"
        report = run.finish(max(time.monotonic(), killed_at + KILL_SETTLED_S))

    assert_only_truncated_errors(report, stack)
    assert_exact_sum(report, stack)
    assert acknowledged_after(report, killed_at) > 0, "the run went on after the kill"
    assert not processes.is_alive(victim)
    served_later = {
        op.node_id for op in report.history.operations if op.start > killed_at + KILL_SETTLED_S
    }
    assert served_later, "the run went on well after the kill"
    assert "node-2" not in served_later, explain(report, stack)


def test_rolling_restart_of_all_nodes_under_load(make_stack: StackFactory) -> None:
    stack = make_stack()
    old_pids = {name: stack.processes[name].pid for name in stack.node_names()}
    with background_check(stack, concurrency=32, seed=62) as run:
        run.wait_for_adds(100)
        stack.restart()
        restarted_at = time.monotonic()
        covered = not run.done()
        report = run.finish(restarted_at)

    assert covered, "the whole rolling restart happened while the run was going: " + explain(
        report, stack
    )
    assert_no_client_errors(report, stack)
    assert_exact_sum(report, stack)
    assert acknowledged_after(report, restarted_at) > 0
    for name, pid in old_pids.items():
        assert stack.processes[name].pid != pid, f"{name} was restarted"
        assert processes.is_alive(stack.processes[name])


def test_stalled_node_is_bypassed_and_its_late_commit_counts_once(
    make_stack: StackFactory,
) -> None:
    """node-1 frozen (SIGSTOP) past nginx's timeout with adds in flight, then resumed.

    nginx passes the adds it held to another node; when node-1 wakes up it still handles them
    (same balancer retry key), and none of them counts twice.
    """
    stack = make_stack(
        proxy_read_timeout_s=PROXY_READ_TIMEOUT_S, ABACUS_ADD_DEADLINE_MS=SHORT_DEADLINE_MS
    )
    slow = stack.processes["node-1"]
    slow_upstream = f"127.0.0.1:{stack.config.node_ports[0]}"
    api = Api(stack.config.url)
    with background_check(stack, concurrency=16, seed=63) as run:
        run.wait_for_adds(20)
        assert not run.done()
        assert processes.signal_group(slow, signal.SIGSTOP)
        try:
            # This sleep is the fault: node-1 frozen past nginx's proxy_read_timeout, so that
            # nginx gives up on it and passes the requests it holds to another node.
            time.sleep(PROXY_READ_TIMEOUT_S + 1.5)
        finally:
            processes.signal_group(slow, signal.SIGCONT)
        resumed_at = time.monotonic()
        report = run.finish(resumed_at)

    # Frozen, like killed, node-1 may stop between a response's head and its body.
    assert_only_truncated_errors(report, stack)
    assert_exact_sum(report, stack)
    # The requests node-1 held timed out there (504) and were answered by another node.
    passed_on = [
        entry
        for entry in nginx_access(stack)
        if upstream_tries(entry)[:1] == [(slow_upstream, "504")] and len(upstream_tries(entry)) > 1
    ]
    assert passed_on, "some requests were in flight on node-1 when it stopped"
    assert all(entry["status"] == 200 for entry in passed_on), passed_on
    assert all(entry["node_id"] in ("node-2", "node-3") for entry in passed_on), passed_on
    assert any(entry["path"] == "/abacus/number" for entry in passed_on), passed_on

    # Woken up, node-1 answers what it held (to nobody): once it holds no add any more and has
    # logged some of those requests, the sum must be unmoved.
    passed_on_ids = {entry["request_id"] for entry in passed_on}
    node_1_port = stack.config.node_ports[0]

    def handled_late() -> set[str]:
        return node_request_ids(stack.log_path("node-1")) & passed_on_ids

    wait_until(lambda: metrics_text.adds_pending(node_1_port) == 0 and bool(handled_late()))
    assert metrics_text.adds_pending(node_1_port) == 0, "node-1 answered every add it held"
    assert api.sum() == report.verdict.final_sum, "the woken node counted nothing again"
    assert handled_late(), "node-1 woke up and handled the requests another node had served"
    assert processes.is_alive(slow)
