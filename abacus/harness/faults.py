"""The faults the nemesis injects, how long each lasts and why, and the record each leaves.

A fault is one of `FaultKind`; how long it is held comes from `FaultTimings`, derived from the
stack it acts on (its balancer's read timeout, its nodes' add deadline), because each duration is
chosen relative to one of those to exercise one mechanism (docs/checker.md, "The nemesis"). Every
injected fault leaves a `FaultEvent` in the history: when it began, when its recovery began, when
the stack was healthy again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from abacus.node.settings import RESOLVE_GRACE_S


class FaultKind(StrEnum):
    # In the order `all` injects them: node and Redis faults in turn, the long rolling restart
    # last, so that a run whose faults come round again starts the second round with a node
    # pause, this time a short one (a run alternates long and short node pauses).
    PAUSE_NODE = "pause-node"  # SIGSTOP a node's process group, then SIGCONT
    KILL_REDIS = "kill-redis"  # SIGKILL Redis, then start it again from its files
    KILL_NODE = "kill-node"  # SIGKILL a node's process group, then start it again
    PAUSE_REDIS = "pause-redis"  # SIGSTOP Redis, then SIGCONT
    CUT_CONNECTIONS = "cut-connections"  # CLIENT KILL of the nodes' connections, repeatedly
    RESTART_NODE = "restart-node"  # rolling graceful restart of every node

    @property
    def on_redis(self) -> bool:
        return self in (FaultKind.KILL_REDIS, FaultKind.PAUSE_REDIS, FaultKind.CUT_CONNECTIONS)


ALL = "all"


def parse_kinds(text: str) -> tuple[FaultKind, ...]:
    """`kill-node,pause-redis` or `all` (every kind, in the enum's order); ValueError otherwise."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if names == [ALL]:
        return tuple(FaultKind)
    if not names:
        raise ValueError("name at least one fault")
    unknown = [name for name in names if name not in {kind.value for kind in FaultKind}]
    if unknown:
        choices = ", ".join(kind.value for kind in FaultKind)
        raise ValueError(f"unknown fault {', '.join(unknown)}; choose from {choices} or {ALL}")
    return tuple(dict.fromkeys(FaultKind(name) for name in names))


@dataclass(frozen=True)
class FaultTimings:
    """How long each fault is held, in seconds (docs/checker.md says why each is what it is)."""

    # Dead longer than nginx's fail_timeout, so nginx tries the dead node again once that ends,
    # is refused, and passes the request on a second time.
    kill_node_down_s: float
    # Long pauses outlast nginx's proxy read timeout: nginx passes the requests the node holds to
    # another node (the balancer's retry, same retry key), and the woken node's late attempts
    # must fail their WATCH or find the record. Short ones stay within both the read timeout and
    # the add deadline: the woken node commits what it held and answers late (the late commit).
    # A run alternates them, long first.
    pause_node_long_s: float
    pause_node_short_s: float
    # Down longer than the nodes take to see Redis gone (about a second), so adds are refused
    # rather than only delayed; then started again from its append-only file.
    kill_redis_down_s: float
    # Longer than an add's deadline plus the resolve grace, so the nodes must answer the adds
    # they hold while Redis is still stopped: the truthful 503s.
    pause_redis_s: float
    # Every normal connection cut every `cut_every_s` for `cut_for_s`: many cuts then land
    # between an EXEC and its reply (the ambiguous EXEC), which one cut rarely does.
    cut_for_s: float
    cut_every_s: float

    @classmethod
    def of(cls, *, fail_timeout_s: float, read_timeout_s: float, deadline_s: float) -> FaultTimings:
        """The timings for a stack whose balancer leaves a failed node out for `fail_timeout_s`
        and waits `read_timeout_s` for a node's answer, and whose nodes give an add `deadline_s`
        to commit."""
        return cls(
            kill_node_down_s=fail_timeout_s + 1.0,
            pause_node_long_s=read_timeout_s + 1.0,
            pause_node_short_s=min(deadline_s, read_timeout_s) / 2,
            kill_redis_down_s=2.0,
            pause_redis_s=deadline_s + RESOLVE_GRACE_S + 1.0,
            cut_for_s=2.0,
            cut_every_s=0.05,
        )

    def pause_node_s(self, occurrence: int) -> float:
        """The `occurrence`-th pause of a node in a run (0 first): long, short, long, ..."""
        return self.pause_node_long_s if occurrence % 2 == 0 else self.pause_node_short_s


@dataclass
class FaultEvent:
    """One fault as the nemesis injected it. Times are `time.monotonic()` seconds."""

    kind: FaultKind
    target: str  # node-N, "nodes" (a rolling restart), or "redis"
    start: float  # the fault began (the signal was sent, the first cut made)
    recover: float  # its recovery began (SIGCONT sent, the process started again, cuts over)
    end: float  # the stack answered healthy again (or the nemesis gave up waiting)
    detail: str
    error: str | None = None  # why the fault or its recovery did not go as planned

    @property
    def held(self) -> float:
        return self.recover - self.start


def kinds_seen(events: Iterable[FaultEvent]) -> set[FaultKind]:
    return {event.kind for event in events if event.error is None}
