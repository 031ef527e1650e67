"""Helpers for the fault-injection tests: a checker run in the background, and what it proves.

A test starts `run_check` in a thread, waits until the run is under way, injects its fault from
the main thread, then joins the run and judges the report.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from harness.addends import UNIT
from harness.check import CheckReport, run_check
from harness.history import Kind, Outcome
from harness.judge import Method
from harness.report import check_json, render_check
from local_stack import LocalStack
from tests.api_client import ADMIN_TOKEN

# Longer than the balancer may take over one request (proxy_next_upstream_timeout 20 s), so a
# client never gives up on a request that nginx is still passing to another node.
CLIENT_TIMEOUT_S = 30.0
PROGRESS_TIMEOUT_S = 30.0


@contextmanager
def background_check(stack: LocalStack, **options: Any) -> Iterator[Future[CheckReport]]:
    """`run_check` (from a reset sum) in a thread; leaving the block waits for it to finish."""
    options.setdefault("timeout", CLIENT_TIMEOUT_S)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fault-check") as pool:
        yield pool.submit(
            run_check, stack.config.url, reset=True, admin_token=ADMIN_TOKEN, **options
        )


def wait_for_adds(url: str, count: int, run: Future[CheckReport]) -> None:
    """Until the sum shows at least `count` of the checker's adds (each is UNIT + a small tag)."""
    deadline = time.monotonic() + PROGRESS_TIMEOUT_S
    with requests.Session() as session:
        while time.monotonic() < deadline and not run.done():
            try:
                reply = session.get(f"{url}/abacus/sum", timeout=5)
                if reply.status_code == 200:
                    total = json.loads(reply.text, parse_float=Decimal, parse_int=Decimal)["sum"]
                    if total >= count * UNIT:
                        return
            except requests.RequestException:
                pass
            time.sleep(0.05)
    if run.done():
        run.result()  # a run that could not even start says why
        raise AssertionError(f"the run finished before {count} adds were acknowledged")
    raise AssertionError(f"{count} adds were not acknowledged within {PROGRESS_TIMEOUT_S:.0f} s")


def counts(report: CheckReport) -> dict[str, dict[str, int]]:
    data = check_json(report)
    return {"adds": data["adds"], "reads": data["reads"]}


def errors(report: CheckReport) -> Counter[tuple[str, str, int | None, str | None]]:
    """What went wrong, by kind, outcome, status and error code: for assertion messages."""
    return Counter(
        (op.kind.value, op.outcome.value, op.status, op.error)
        for op in report.history.operations
        if op.outcome is not Outcome.OK
    )


def explain(report: CheckReport, stack: LocalStack | None = None) -> str:
    text = render_check(report) + f"\n  errors      {dict(errors(report))}"
    if stack is not None:
        text += f"\n  logs        {stack.dir / 'logs'}"
    return text


def assert_no_client_errors(report: CheckReport, stack: LocalStack) -> None:
    """Every planned add and read was answered 200."""
    seen = counts(report)
    assert seen["adds"]["ok"] == seen["adds"]["sent"] == len(report.history.of(Kind.ADD)), explain(
        report, stack
    )
    assert seen["adds"]["failed"] == seen["adds"]["unknown"] == 0, explain(report, stack)
    assert seen["reads"]["failed"] == seen["reads"]["unknown"] == 0, explain(report, stack)


def assert_consistent(report: CheckReport, stack: LocalStack) -> None:
    """The checker's verdict: one correct counter, and a final sum that was read."""
    assert report.verdict.consistent, explain(report, stack)
    assert report.exit_code == 0, explain(report, stack)


def assert_exact_sum(report: CheckReport, stack: LocalStack) -> None:
    """Consistent, and the final sum is decided exactly: acknowledged + the unknown adds found
    applied (a unique placement), nothing counted twice, nothing lost."""
    assert_consistent(report, stack)
    verdict = report.verdict
    if verdict.unknown:
        assert verdict.method is Method.EXACT, explain(report, stack)
    assert verdict.expected_sum is not None, explain(report, stack)
    assert verdict.final_sum == verdict.expected_sum, explain(report, stack)


def acknowledged_after(report: CheckReport, moment: float) -> int:
    """Adds invoked after `moment` (time.monotonic()) and acknowledged."""
    return sum(op.start > moment for op in report.history.of(Kind.ADD, Outcome.OK))


def nginx_access(stack: LocalStack) -> list[dict[str, Any]]:
    """The balancer's access log entries (JSON lines; its error log lines are skipped)."""
    entries = []
    for line in stack.log_path("nginx").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("logger") == "nginx.access":
                entries.append(entry)
    return entries


def node_request_ids(path: Path) -> set[str]:
    """Request ids of the requests a node answered (its access log lines)."""
    ids = set()
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("logger") == "abacus.access" and entry.get("request_id"):
            ids.add(str(entry["request_id"]))
    return ids
