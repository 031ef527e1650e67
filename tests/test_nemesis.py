"""The nemesis against a real stack under load: each fault happens, is recorded with its times,
the stack recovers, and the checker's verdict on the whole run is still CONSISTENT.

Each test runs the checker in the background (keyed adds: unknown outcomes are learnt at the
end, as with every run with faults), injects one fault through the nemesis, watches for the
fault's own evidence while it lasts, and lets the load go on for adds acknowledged after the
stack was healthy again. The stacks are tightened (a 1.5 s add deadline, a 4 s balancer read
timeout) so that the durations derived from them stay short.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from abacus.harness.check import CheckReport
from abacus.harness.faults import FaultEvent, FaultKind
from abacus.harness.history import Kind, Outcome
from abacus.harness.nemesis import Nemesis
from abacus.harness.timeline import seen_end, seen_outcome
from abacus.local_stack import LocalStack, processes
from abacus.local_stack.stack import health_status
from tests.conftest import StackFactory
from tests.fault_support import (
    BackgroundRun,
    assert_consistent,
    background_check,
    explain,
    nginx_access,
    upstream_tries,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.stack

DEADLINE_MS = "1500"
READ_TIMEOUT_S = 4.0  # above the deadline + 0.8 s grace + 1 s margin the stack requires


def tight_stack(make_stack: StackFactory) -> LocalStack:
    return make_stack(
        nodes=2, proxy_read_timeout_s=READ_TIMEOUT_S, ABACUS_ADD_DEADLINE_MS=DEADLINE_MS
    )


def state(pid: int) -> str | None:
    """The process's state letter (R, S, T for stopped, ...), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def inject(
    stack: LocalStack, run: BackgroundRun, kind: FaultKind, watch: Callable[[], bool]
) -> tuple[FaultEvent, bool, CheckReport]:
    """The fault, under load: `watch` polled while it lasts (was its evidence seen?), then the
    run finished once adds after the recovery were acknowledged."""
    run.wait_for_adds(100)
    nemesis = Nemesis(stack, [kind], interval=0)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nemesis") as pool:
        injecting = pool.submit(nemesis.run_one, kind)
        seen = wait_until(watch, timeout=60, give_up=injecting.done) or watch()
        event = injecting.result()
    report = run.finish(event.end)
    report.history.faults = list(nemesis.events)
    return event, seen, report


def assert_recorded(event: FaultEvent, kind: FaultKind, held_at_least: float) -> None:
    assert event.kind is kind
    assert event.error is None, event
    assert event.start <= event.recover <= event.end
    assert event.held >= held_at_least, event


def assert_healthy_and_consistent(stack: LocalStack, report: CheckReport) -> None:
    assert all(health_status(port) == 200 for port in stack.config.node_ports)
    assert health_status(stack.config.port) == 200
    assert_consistent(report, stack)


def met_the_fault(report: CheckReport, event: FaultEvent) -> list[Outcome]:
    """How the adds answered while the fault lasted were first answered."""
    return [
        seen_outcome(op)
        for op in report.history.of(Kind.ADD)
        if event.start <= seen_end(op) <= event.end
    ]


def test_kill_node(make_stack: StackFactory) -> None:
    stack = tight_stack(make_stack)
    victim = stack.processes["node-1"]
    with background_check(stack, concurrency=16, seed=81, resolve_unknown=True) as run:
        event, seen, report = inject(
            stack, run, FaultKind.KILL_NODE, lambda: not processes.is_alive(victim)
        )
    assert seen, "node-1's first process died"
    assert_recorded(event, FaultKind.KILL_NODE, held_at_least=3.0)
    assert event.target == "node-1"
    assert stack.processes["node-1"].pid != victim.pid, "started again as another process"
    assert_healthy_and_consistent(stack, report)


def test_restart_node(make_stack: StackFactory) -> None:
    stack = tight_stack(make_stack)
    old = {name: stack.processes[name] for name in stack.node_names()}
    with background_check(stack, concurrency=16, seed=82, resolve_unknown=True) as run:
        event, seen, report = inject(
            stack,
            run,
            FaultKind.RESTART_NODE,
            lambda: not any(processes.is_alive(p) for p in old.values()),
        )
    assert seen, "every node's first process stopped"
    assert_recorded(event, FaultKind.RESTART_NODE, held_at_least=0.0)
    for name, process in old.items():
        assert stack.processes[name].pid != process.pid, name
    assert_healthy_and_consistent(stack, report)


def test_pause_node_past_the_read_timeout_makes_the_balancer_retry(
    make_stack: StackFactory,
) -> None:
    stack = tight_stack(make_stack)
    paused = stack.processes["node-1"]
    with background_check(stack, concurrency=16, seed=83, resolve_unknown=True) as run:
        event, seen, report = inject(
            stack, run, FaultKind.PAUSE_NODE, lambda: state(paused.pid) == "T"
        )
    assert seen, "node-1 was stopped (state T) while the fault lasted"
    assert_recorded(event, FaultKind.PAUSE_NODE, held_at_least=READ_TIMEOUT_S + 1.0)
    assert state(paused.pid) in ("S", "R"), "and running again, the same process"
    node_1 = f"127.0.0.1:{stack.config.node_ports[0]}"
    retried = [e for e in nginx_access(stack) if (node_1, "504") in upstream_tries(e)]
    assert retried, "nginx gave up on the paused node and passed requests on"
    assert_healthy_and_consistent(stack, report)


def test_kill_redis(make_stack: StackFactory) -> None:
    stack = tight_stack(make_stack)
    victim = stack.processes["redis"]
    with background_check(stack, concurrency=16, seed=84, resolve_unknown=True) as run:
        event, seen, report = inject(
            stack, run, FaultKind.KILL_REDIS, lambda: not processes.is_alive(victim)
        )
    assert seen, "Redis died"
    assert_recorded(event, FaultKind.KILL_REDIS, held_at_least=2.0)
    assert stack.processes["redis"].pid != victim.pid, "started again from its files"
    met = met_the_fault(report, event)
    assert set(met) - {Outcome.OK}, "adds met Redis gone: " + explain(report, stack)
    # Acknowledged adds survived the restart: the final-sum check holds them all.
    assert_healthy_and_consistent(stack, report)


def test_pause_redis_past_the_add_deadline(make_stack: StackFactory) -> None:
    stack = tight_stack(make_stack)
    redis_pid = stack.processes["redis"].pid
    with background_check(stack, concurrency=16, seed=85, resolve_unknown=True) as run:
        event, seen, report = inject(
            stack, run, FaultKind.PAUSE_REDIS, lambda: state(redis_pid) == "T"
        )
    assert seen, "Redis was stopped (state T) while the fault lasted"
    assert_recorded(event, FaultKind.PAUSE_REDIS, held_at_least=1.5 + 0.8 + 1.0)
    # Held past the deadline: adds were answered while Redis was still stopped, truthfully. The
    # hold is the contract's bound (deadline + grace) plus one second: the slack tests/bounds.py
    # allows a loaded machine over it.
    answered_while_held = [
        op
        for op in report.history.of(Kind.ADD)
        if event.start < seen_end(op) < event.recover and seen_outcome(op) is not Outcome.OK
    ]
    assert answered_while_held, "adds answered 503 by their deadline: " + explain(report, stack)
    assert_healthy_and_consistent(stack, report)


def replicated_stack(make_stack: StackFactory) -> LocalStack:
    return make_stack(
        nodes=2,
        proxy_read_timeout_s=READ_TIMEOUT_S,
        redis_ha=True,
        ABACUS_ADD_DEADLINE_MS=DEADLINE_MS,
    )


def test_kill_redis_on_a_replicated_stack_kills_the_primary_of_the_moment(
    make_stack: StackFactory,
) -> None:
    stack = replicated_stack(make_stack)
    primary = stack.redis_primary()
    victim = stack.processes[primary]
    with background_check(stack, concurrency=16, seed=87, resolve_unknown=True) as run:
        event, seen, report = inject(
            stack, run, FaultKind.KILL_REDIS, lambda: not processes.is_alive(victim)
        )
    assert seen, f"the primary ({primary}) died"
    assert f"SIGKILL to {primary} (pid {victim.pid})" in event.detail
    assert processes.is_alive(stack.processes[primary]), "and came back (as a replica)"
    assert stack.processes[primary].pid != victim.pid
    assert_healthy_and_consistent(stack, report)


def test_pause_redis_on_a_replicated_stack_stops_the_primary_of_the_moment(
    make_stack: StackFactory,
) -> None:
    stack = replicated_stack(make_stack)
    primary = stack.redis_primary()
    pid = stack.processes[primary].pid
    with background_check(stack, concurrency=16, seed=88, resolve_unknown=True) as run:
        event, seen, report = inject(stack, run, FaultKind.PAUSE_REDIS, lambda: state(pid) == "T")
    assert seen, f"the primary ({primary}) was stopped (state T) while the fault lasted"
    assert f"SIGSTOP to {primary} (pid {pid})" in event.detail
    assert state(pid) in ("S", "R"), "and running again, the same process"
    assert_healthy_and_consistent(stack, report)


def test_cut_connections(make_stack: StackFactory) -> None:
    stack = tight_stack(make_stack)
    with background_check(stack, concurrency=16, seed=86, resolve_unknown=True) as run:
        event, _, report = inject(stack, run, FaultKind.CUT_CONNECTIONS, lambda: True)
    assert_recorded(event, FaultKind.CUT_CONNECTIONS, held_at_least=2.0)
    cut = re.search(r"(\d+) connections cut in (\d+) rounds", event.detail)
    assert cut is not None, event.detail
    assert int(cut.group(1)) > 0, "the nodes' connections were cut"
    assert int(cut.group(2)) >= 20, "again and again for the whole fault"
    assert_healthy_and_consistent(stack, report)
