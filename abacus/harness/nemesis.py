"""The nemesis: faults injected on purpose into a local stack while the checker's load runs.

It acts only on the stack it is given, through the stack's own library (abacus/local_stack/):
what runs where comes from the stack's state, every signal goes to a pid recorded there, never
to a process found by name. Faults come one at a time, in the order asked for and again from the
start, `interval` seconds after the previous one was over (and after the load began). Each fault
is held as long as `FaultTimings` says (docs/checker.md says why), then recovered, then the
nemesis waits until every node and the balancer answer /health 200 again; each leaves a
`FaultEvent` with those times. A fault that cannot be injected, or a stack that does not come
back, ends the nemesis: its event carries the error.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from abacus.harness.faults import FaultEvent, FaultKind, FaultTimings
from abacus.local_stack import LocalStack, StackError, nginx_config

# How long the stack may take to be healthy again after a fault: a node's start is a few
# seconds; far more means it is not coming back.
RECOVERY_TIMEOUT_S = 60.0
# Faults fail with these: the stack's own errors, Redis refusing a command, a signal refused.
FAULT_ERRORS = (StackError, redis.RedisError, OSError)


def timings_for(stack: LocalStack) -> FaultTimings:
    """The fault durations for this stack: from its balancer's and its nodes' settings."""
    return FaultTimings.of(
        fail_timeout_s=nginx_config.FAIL_TIMEOUT_S,
        read_timeout_s=stack.config.proxy_read_timeout_s,
        deadline_s=stack.config.node_settings().add_deadline_s,
    )


@dataclass
class _Marks:
    """What a fault in progress has done so far, for its event even if it fails midway."""

    target: str = ""
    start: float = math.nan
    recover: float = math.nan


class Nemesis:
    def __init__(
        self,
        stack: LocalStack,
        kinds: Sequence[FaultKind],
        *,
        interval: float,
        timings: FaultTimings | None = None,
        on_event: Callable[[FaultEvent], None] | None = None,
    ) -> None:
        if not kinds:
            raise ValueError("the nemesis needs at least one fault")
        if interval < 0:
            raise ValueError("interval must not be negative")
        on_redis = sorted(kind.value for kind in kinds if kind.on_redis)
        if on_redis and not stack.config.own_redis:
            raise StackError(
                f"{', '.join(on_redis)}: this stack uses an external Redis, which is not ours to "
                "break"
            )
        self.stack = stack
        self.kinds = tuple(kinds)
        self.interval = interval
        self.timings = timings or timings_for(stack)
        self.on_event = on_event
        self.events: list[FaultEvent] = []
        self._finish = threading.Event()  # inject no more faults
        self._hurry = threading.Event()  # end the fault in progress now
        self._thread: threading.Thread | None = None
        self._node_faults = 0
        self._node_pauses = 0

    # -- control --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="abacus-nemesis", daemon=True)
        self._thread.start()

    def finish(self, *, hurry: bool = False) -> None:
        """Inject no more faults; return once the one in progress is over and recovered.

        With `hurry` (the run was interrupted) the fault in progress is held no longer: it is
        recovered at once, so no node or Redis is left stopped.
        """
        self._finish.set()
        if hurry:
            self._hurry.set()
        if self._thread is not None:
            self._thread.join()

    def run_one(self, kind: FaultKind) -> FaultEvent:
        """Inject one fault now, hold it, recover, wait until healthy; its event (recorded)."""
        event = self._perform(kind)
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)
        return event

    def _run(self) -> None:
        for kind in itertools.cycle(self.kinds):
            if self._finish.wait(self.interval):
                return
            if self.run_one(kind).error is not None:
                return  # a stack that did not come back is no place for the next fault

    # -- one fault ------------------------------------------------------------------------

    def _perform(self, kind: FaultKind) -> FaultEvent:
        marks = _Marks()
        detail = ""
        error = None
        action = {
            FaultKind.KILL_NODE: self._kill_node,
            FaultKind.RESTART_NODE: self._restart_nodes,
            FaultKind.PAUSE_NODE: self._pause_node,
            FaultKind.KILL_REDIS: self._kill_redis,
            FaultKind.PAUSE_REDIS: self._pause_redis,
            FaultKind.CUT_CONNECTIONS: self._cut_connections,
        }[kind]
        try:
            detail = action(marks)
        except FAULT_ERRORS as exc:
            error = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        start = now if math.isnan(marks.start) else marks.start
        recover = now if math.isnan(marks.recover) else marks.recover
        try:
            self.stack.wait_all_healthy(RECOVERY_TIMEOUT_S)
        except StackError as exc:
            error = error or f"the stack did not recover: {exc}"
        return FaultEvent(kind, marks.target, start, recover, time.monotonic(), detail, error)

    def _next_node(self) -> str:
        """Node faults go round the nodes: node-1, node-2, ..."""
        nodes = self.stack.node_names()
        node = nodes[self._node_faults % len(nodes)]
        self._node_faults += 1
        return node

    def _hold_until(self, moment: float) -> None:
        self._hurry.wait(max(0.0, moment - time.monotonic()))

    def _kill_node(self, marks: _Marks) -> str:
        node = marks.target = self._next_node()
        old_pid = self.stack.processes[node].pid
        down_s = self.timings.kill_node_down_s
        marks.start = time.monotonic()
        self.stack.kill_node(node)
        self._hold_until(marks.start + down_s)
        marks.recover = time.monotonic()
        self.stack.start_node(node)
        return (
            f"SIGKILL to {node}'s process group (pid {old_pid}); started again after "
            f"{down_s:g} s as pid {self.stack.processes[node].pid}"
        )

    def _restart_nodes(self, marks: _Marks) -> str:
        marks.target = "nodes"
        nodes = self.stack.node_names()
        old = [self.stack.processes[node].pid for node in nodes]
        marks.start = time.monotonic()
        self.stack.restart()
        marks.recover = time.monotonic()
        new = [self.stack.processes[node].pid for node in nodes]
        pids = ", ".join(f"{n} {a}->{b}" for n, a, b in zip(nodes, old, new, strict=True))
        return f"rolling graceful restart (SIGTERM, start, healthy, one node at a time): {pids}"

    def _pause_node(self, marks: _Marks) -> str:
        node = marks.target = self._next_node()
        held_s = self.timings.pause_node_s(self._node_pauses)
        kind = "long" if self._node_pauses % 2 == 0 else "short"
        self._node_pauses += 1
        self._stopped(marks, node, held_s)
        return f"SIGSTOP to {node}'s process group for {held_s:g} s ({kind}), then SIGCONT"

    def _kill_redis(self, marks: _Marks) -> str:
        marks.target = "redis"
        # With Sentinel it is the primary of the moment that goes: the Sentinels fail over, and
        # the killed instance comes back as a replica.
        name = self.stack.redis_primary()
        old_pid = self.stack.processes[name].pid
        down_s = self.timings.kill_redis_down_s
        marks.start = time.monotonic()
        self.stack.redis("kill")
        self._hold_until(marks.start + down_s)
        marks.recover = time.monotonic()
        self.stack.redis("start")
        return (
            f"SIGKILL to {name} (pid {old_pid}); started again from its append-only file "
            f"after {down_s:g} s as pid {self.stack.processes[name].pid}"
        )

    def _pause_redis(self, marks: _Marks) -> str:
        marks.target = "redis"
        name = self.stack.redis_primary()
        held_s = self.timings.pause_redis_s
        self._stopped(marks, name, held_s)
        return f"SIGSTOP to {name} (pid {self.stack.processes[name].pid}) for {held_s:g} s"

    def _stopped(self, marks: _Marks, name: str, held_s: float) -> None:
        """SIGSTOP `name`'s process group for `held_s`, then SIGCONT, whatever happens meanwhile."""
        marks.start = time.monotonic()
        self.stack.pause(name)
        try:
            self._hold_until(marks.start + held_s)
        finally:
            marks.recover = time.monotonic()
            self.stack.resume(name)

    def _cut_connections(self, marks: _Marks) -> str:
        marks.target = "redis"
        timings = self.timings
        client = redis.Redis.from_url(
            self.stack.redis_primary_url(), socket_timeout=5, socket_connect_timeout=5
        )
        cut = rounds = 0
        with contextlib.closing(client):
            marks.start = time.monotonic()
            ends = marks.start + timings.cut_for_s
            while time.monotonic() < ends and not self._hurry.is_set():
                # TYPE normal: the nodes' connections (no replica, no pub/sub); SKIPME: not ours.
                cut += int(client.client_kill_filter(_type="normal", skipme=True))
                rounds += 1
                self._hurry.wait(timings.cut_every_s)  # the fault's own pace
            marks.recover = time.monotonic()
        return (
            f"CLIENT KILL TYPE normal every {timings.cut_every_s * 1000:g} ms for "
            f"{timings.cut_for_s:g} s: {cut} connections cut in {rounds} rounds"
        )
