"""The consistency checker against the real local stack: consistent, exact, spread over nodes."""

from __future__ import annotations

import pytest

from abacus.harness.check import run_check
from abacus.harness.history import Kind, Outcome
from abacus.harness.judge import Method
from abacus.local_stack import LocalStack
from tests.api_client import ADMIN_TOKEN

pytestmark = pytest.mark.stack


def test_real_stack_is_consistent_at_concurrency_64(stack: LocalStack) -> None:
    report = run_check(
        stack.config.url, adds=1500, concurrency=64, reset=True, admin_token=ADMIN_TOKEN, seed=7
    )
    assert report.exit_code == 0, report.verdict.message()
    assert report.verdict.consistent
    assert report.verdict.method is Method.EXACT
    adds = [op for op in report.history.operations if op.kind is Kind.ADD]
    assert len(adds) == 1500
    assert all(op.outcome is Outcome.OK for op in adds), "no add failed or was left unknown"


def test_real_stack_is_consistent_at_concurrency_256(stack: LocalStack) -> None:
    report = run_check(
        stack.config.url, adds=3000, concurrency=256, reset=True, admin_token=ADMIN_TOKEN, seed=8
    )
    assert report.exit_code == 0, report.verdict.message()
    adds = [op for op in report.history.operations if op.kind is Kind.ADD]
    assert all(op.outcome is Outcome.OK for op in adds)
