"""Helpers for the fault-injection tests: a checker run in the background, and what it proves.

A test starts a `background_check`, waits until the run is under way, injects its fault from the
main thread and waits until the fault is over (the restart returned, the node is gone, Redis is
back). Then `finish` lets the run go on for a number of adds acknowledged after the recovery and
stops it: the load covers the whole fault however fast or slow the machine is, which a fixed
number of adds cannot promise. The test then judges the report.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from abacus.harness.check import CheckReport, run_check
from abacus.harness.history import Kind, Operation, Outcome
from abacus.harness.judge import Method
from abacus.harness.report import check_json, render_check
from abacus.local_stack import LocalStack
from tests.api_client import ADMIN_TOKEN
from tests.waiting import wait_until

# Longer than the balancer may take over one request (proxy_next_upstream_timeout 20 s), so a
# client never gives up on a request that nginx is still passing to another node.
CLIENT_TIMEOUT_S = 30.0
# The failure bound of a wait on the run's progress: more than one request may take (above) plus
# a node's restart, far more than a passing run needs on a loaded machine.
PROGRESS_TIMEOUT_S = 60.0
# The most adds a background run may fire (its plan, which the judge's exactness needs up
# front): it is told to stop long before; planning this many takes about 0.5 s and 40 MB.
RUN_CAP_ADDS = 100_000
# How long the load goes on once the fault is over, in adds invoked after the recovery and
# acknowledged: the service is seen serving steadily again, not just once.
ADDS_AFTER_RECOVERY = 200


class Progress:
    """What a running check has seen so far: the finished adds, fed from its firing threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._adds: list[tuple[float, Outcome]] = []  # (start, outcome) of each finished add

    def record(self, op: Operation) -> None:
        if op.kind is Kind.ADD:
            with self._lock:
                self._adds.append((op.start, op.outcome))

    def adds(self, *outcomes: Outcome, after: float = -math.inf) -> int:
        """Finished adds invoked after `after` (time.monotonic()), ended in one of `outcomes`."""
        with self._lock:
            return sum(outcome in outcomes and start > after for start, outcome in self._adds)


class BackgroundRun:
    """A checker run firing from a thread until `finish` (or the test's end) stops it."""

    def __init__(self, future: Future[CheckReport], progress: Progress, stop: threading.Event):
        self.future = future
        self.progress = progress
        self.stop = stop

    def done(self) -> bool:
        return self.future.done()

    def wait_for(self, what: str, condition: Callable[[], bool]) -> None:
        """Until `condition()`; the run ending first, or no progress within the bound, fails."""
        if wait_until(condition, PROGRESS_TIMEOUT_S, give_up=self.done):
            return
        if self.done():
            report = self.future.result()  # a run that could not even start says why here
            raise AssertionError(f"the run ended before {what}:\n{explain(report)}")
        raise AssertionError(f"not within {PROGRESS_TIMEOUT_S:.0f} s: {what}")

    def wait_for_adds(self, count: int, *, after: float = -math.inf) -> None:
        """Until `count` adds invoked after `after` have been acknowledged."""
        self.wait_for(
            f"{count} adds were acknowledged",
            lambda: self.progress.adds(Outcome.OK, after=after) >= count,
        )

    def wait_for_errors(self, count: int = 1) -> None:
        """Until `count` adds have failed or ended unknown: the clients have seen the fault."""
        self.wait_for(
            f"{count} adds failed or ended unknown",
            lambda: self.progress.adds(Outcome.FAILED, Outcome.UNKNOWN) >= count,
        )

    def finish(self, recovered_at: float, more: int = ADDS_AFTER_RECOVERY) -> CheckReport:
        """The fault was over at `recovered_at`: once `more` adds invoked after it have been
        acknowledged, stop the run and return its report."""
        try:
            self.wait_for_adds(more, after=recovered_at)
        except AssertionError as failure:
            ended_by_itself = self.done()  # then the failure already shows the report
            self.stop.set()
            if ended_by_itself or self.future.exception() is not None:
                raise
            raise AssertionError(f"{failure}\n{explain(self.future.result())}") from None
        self.stop.set()
        return self.future.result()


@contextmanager
def background_check(stack: LocalStack, **options: Any) -> Iterator[BackgroundRun]:
    """`run_check` (from a reset sum) in a thread, firing until the test calls `finish`.

    Leaving the block stops the run (if the test did not) and waits for its judgement.
    """
    options.setdefault("timeout", CLIENT_TIMEOUT_S)
    options.setdefault("adds", RUN_CAP_ADDS)
    progress = Progress()
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fault-check") as pool:
        future = pool.submit(
            run_check,
            stack.config.url,
            reset=True,
            admin_token=ADMIN_TOKEN,
            stop=stop,
            on_done=progress.record,
            **options,
        )
        try:
            yield BackgroundRun(future, progress, stop)
        finally:
            # A test that failed midway must not leave the run firing the rest of its plan.
            stop.set()


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
    """Every add and read the run fired was answered 200."""
    seen = counts(report)
    assert seen["adds"]["ok"] == seen["adds"]["sent"] == len(report.history.of(Kind.ADD)), explain(
        report, stack
    )
    assert seen["adds"]["failed"] == seen["adds"]["unknown"] == 0, explain(report, stack)
    assert seen["reads"]["failed"] == seen["reads"]["unknown"] == 0, explain(report, stack)


# How requests reports a response cut off after its head.
TRUNCATED = {"ChunkedEncodingError", "IncompleteRead", "ProtocolError"}


def assert_only_truncated_errors(report: CheckReport, stack: LocalStack, at_most: int = 2) -> None:
    """No client error but the one thing nginx cannot hide when a node dies or freezes: a worker
    stopped between writing a response's head and its body (two writes, microseconds apart)
    leaves that client a truncated response, after nginx has committed to it. Its add is then
    unknown to the client (a retry with its key would learn it); anything else (503s, 502s,
    lost requests) is still an error here."""
    truncated = {
        key: n for key, n in errors(report).items() if key[2] is None and key[3] in TRUNCATED
    }
    assert sum(truncated.values()) <= at_most, explain(report, stack)
    assert set(errors(report)) == set(truncated), explain(report, stack)


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


def upstream_tries(entry: dict[str, Any]) -> list[tuple[str, str]]:
    """The (node address, status) of each try nginx made for one access log entry.

    nginx joins the tries of one location with ", " and those across an internal redirect
    (an error_page to another location) with " : ".
    """
    addresses = re.split(r", | : ", str(entry["upstream"]))
    statuses = re.split(r", | : ", str(entry["upstream_status"]))
    return list(zip(addresses, statuses, strict=False))


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
