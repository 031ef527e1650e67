"""Any number of nodes: the local stack at six passes the consistency checker at concurrency 256
with every node serving; and scripts/wait_for_nodes.py, which the smoke scripts run after scaling
the compose or Kubernetes nodes, tells how many nodes the balancer reaches."""

from __future__ import annotations

import pytest

from abacus.harness.check import run_check
from abacus.harness.history import Kind, Outcome
from abacus.local_stack import LocalStack
from tests.api_client import ADMIN_TOKEN
from tests.conftest import StackFactory
from tests.script_runner import run_script

pytestmark = pytest.mark.stack

ADDS = 3000


def test_six_nodes_pass_the_consistency_checker_at_concurrency_256(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(nodes=6)
    report = run_check(
        stack.config.url, adds=ADDS, concurrency=256, reset=True, admin_token=ADMIN_TOKEN, seed=17
    )
    assert report.exit_code == 0, report.verdict.message()
    adds = [op for op in report.history.operations if op.kind is Kind.ADD]
    assert len(adds) == ADDS
    assert all(op.outcome is Outcome.OK for op in adds), "no add failed or was left unknown"
    # Round robin over all six: each committed its share into the one sum.
    assert {op.node_id for op in adds} == set(stack.node_names())


def test_wait_for_nodes_sees_every_node_behind_the_balancer(stack: LocalStack) -> None:
    result = run_script("wait_for_nodes.py", "--url", stack.config.url, "--nodes", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": " + ", ".join(stack.node_names()))


@pytest.mark.parametrize("expected", ["2", "4"])
def test_wait_for_nodes_fails_when_another_number_answers(stack: LocalStack, expected: str) -> None:
    # --timeout 0: one round, which sees the three nodes, then the verdict.
    result = run_script(
        "wait_for_nodes.py", "--url", stack.config.url, "--nodes", expected, "--timeout", "0"
    )
    assert result.returncode == 1
    assert "the last round saw 3: node-1, node-2, node-3" in result.stderr
