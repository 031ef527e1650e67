"""Event-bounded waits: poll until what a test needs has happened, fail after a generous bound.

A test waits for the event it relies on (a log line written, a node healthy again, adds arrived
at a node) instead of sleeping for a time that guesses how fast the machine is. The bound only
decides how long a *failing* test takes to fail, so it is generous: a passing test never waits
for it, and a loaded CI machine is far inside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from abacus.local_stack import LocalStack
from abacus.local_stack.stack import health_status
from tests import metrics_text

PATIENCE_S = 30.0
POLL_S = 0.05


def never() -> bool:
    return False


def wait_until(
    condition: Callable[[], bool],
    timeout: float = PATIENCE_S,
    poll: float = POLL_S,
    *,
    give_up: Callable[[], bool] = never,
) -> bool:
    """True as soon as `condition()` is; False if it still is not after `timeout` seconds, or
    as soon as `give_up()` says it never will be."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if give_up() or time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def wait_for_health(port: int, status: int = 200, timeout: float = PATIENCE_S) -> bool:
    """Until GET /health on 127.0.0.1:port answers `status`."""
    return wait_until(lambda: health_status(port) == status, timeout, poll=0.1)


def wait_all_healthy(stack: LocalStack, timeout: float = PATIENCE_S) -> None:
    """Every node of `stack` answers /health with 200 (each within `timeout` from now)."""
    deadline = time.monotonic() + timeout
    for port in stack.config.node_ports:
        remaining = max(0.0, deadline - time.monotonic())
        assert wait_for_health(port, 200, remaining), f"node on {port} not healthy again"


def wait_for_log(path: Path, text: str, timeout: float = PATIENCE_S) -> bool:
    """Until `text` appears in the log file at `path` (lines are written just after a response)."""
    return wait_until(lambda: path.exists() and text in path.read_text(errors="replace"), timeout)


def wait_for_pending_adds(
    ports: Iterable[int],
    count: int,
    timeout: float = PATIENCE_S,
    *,
    give_up: Callable[[], bool] = never,
) -> bool:
    """Until the nodes on `ports` together hold exactly `count` adds they have not answered
    (their `abacus_adds_pending` gauge): the requests have arrived, whatever the machine's pace.
    """
    nodes = list(ports)
    return wait_until(
        lambda: sum(metrics_text.adds_pending(port) for port in nodes) == count,
        timeout,
        give_up=give_up,
    )
