"""What the client library's real-stack tests share: a ledger of every add the load made, the
fault (a node SIGKILLed, then Redis SIGSTOPped until the clients' deadlines run out on it), and
the final reckoning (open keys settled, the sum exactly what counted).

The load runs until the fault is over and the service is seen serving again, however fast or
slow the machine: every wait is for an event the ledger shows, bounded only so that a failing
test ends.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

from abacus.local_stack import LocalStack, processes
from abacus_client import AbacusError, AddResult, Client, ErrorCode, OutcomeUnknown, ServiceError
from tests.waiting import wait_until

# The nodes' add deadline and the balancer's read timeout (which must exceed the deadline plus
# the 0.8 s grace and a margin): a node answers a stalled add within 2.8 s.
NODE_DEADLINE_MS = "2000"
PROXY_READ_TIMEOUT_S = 5.0
# The clients': an attempt gives up before a node would answer a stalled add, so that attempts
# time out while the nodes still hold them, and those commit once Redis resumes: open outcomes
# that really counted, which only the same key on every attempt keeps from counting twice.
CLIENT_TIMEOUT_S = 1.0
CLIENT_DEADLINE_S = 4.0
# Settling an open key after the fault: time enough for Redis to be back on a slow machine.
SETTLE_DEADLINE_S = 60.0
# Adds returned before the fault (the load is under way) and after it (serving steadily again).
ADDS_BEFORE = 20
ADDS_AFTER = 50
# Outcome-open errors of calls made wholly within the Redis stop: the stop outlasted a deadline.
OPEN_DURING_STOP = 2
# The failure bound of each wait (see tests/waiting.py): far above what a passing run needs.
PATIENCE_S = 90.0
# The service's answers that say an add did not count (with new_key_if_fenced, a fenced key
# surfaces only when the deadline ends right after the fence).
NOT_COUNTED = frozenset({ErrorCode.UNAVAILABLE, ErrorCode.IDEMPOTENCY_KEY_REFUSED})


@dataclass(frozen=True)
class Call:
    number: int
    started: float
    ended: float
    result: AddResult | None = None
    error: BaseException | None = None


class Ledger:
    """Every add call of the load, recorded by the thread or task that made it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self.calls: list[Call] = []

    def next_number(self) -> int:
        with self._lock:
            return next(self._numbers)

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _count(self, kind: type[object], started_after: float) -> int:
        with self._lock:
            return sum(
                call.started > started_after
                and isinstance(call.result if kind is AddResult else call.error, kind)
                for call in self.calls
            )

    def returned(self, started_after: float = 0.0) -> int:
        return self._count(AddResult, started_after)

    def open(self, started_after: float = 0.0) -> int:
        return self._count(OutcomeUnknown, started_after)


def timed_add(ledger: Ledger, add: Callable[[int], AddResult]) -> None:
    """One add through `add`, recorded whatever it ends in."""
    number = ledger.next_number()
    started = time.monotonic()
    try:
        result = add(number)
    except AbacusError as error:
        ledger.record(Call(number, started, time.monotonic(), error=error))
    else:
        ledger.record(Call(number, started, time.monotonic(), result=result))


async def timed_add_async(ledger: Ledger, add: Callable[[int], Awaitable[AddResult]]) -> None:
    """As `timed_add`, awaited."""
    number = ledger.next_number()
    started = time.monotonic()
    try:
        result = await add(number)
    except AbacusError as error:
        ledger.record(Call(number, started, time.monotonic(), error=error))
    else:
        ledger.record(Call(number, started, time.monotonic(), result=result))


@dataclass(frozen=True)
class FaultTimes:
    stopped_at: float
    resumed_at: float


def wait(
    ledger: Ledger, what: str, condition: Callable[[], bool], give_up: Callable[[], bool]
) -> None:
    assert wait_until(condition, PATIENCE_S, give_up=give_up), (
        f"not within {PATIENCE_S:.0f} s: {what} ({summary(ledger)})"
    )


def inject_fault(stack: LocalStack, ledger: Ledger, load_ended: Callable[[], bool]) -> FaultTimes:
    """While the load runs: node-2 SIGKILLed, then Redis SIGSTOPped until calls made wholly
    inside the stop have run out of deadline, then SIGCONT; returns once the load is seen
    succeeding again. Only the stack's own processes are signalled, by their process group."""
    wait(
        ledger, f"{ADDS_BEFORE} adds returned", lambda: ledger.returned() >= ADDS_BEFORE, load_ended
    )
    victim = stack.processes["node-2"]
    assert processes.signal_group(victim, signal.SIGKILL)
    assert processes.wait_gone(victim, 5), "node-2's master and workers are gone"
    stack.pause("redis")
    stopped_at = time.monotonic()
    try:
        wait(
            ledger,
            "calls made inside the Redis stop ran out of deadline",
            lambda: ledger.open(started_after=stopped_at) >= OPEN_DURING_STOP,
            load_ended,
        )
    finally:
        stack.resume("redis")
    resumed_at = time.monotonic()
    assert resumed_at - stopped_at > CLIENT_DEADLINE_S, "Redis was stopped past a deadline"
    wait(
        ledger,
        f"{ADDS_AFTER} adds made after Redis resumed returned",
        lambda: ledger.returned(started_after=resumed_at) >= ADDS_AFTER,
        load_ended,
    )
    return FaultTimes(stopped_at, resumed_at)


def summary(ledger: Ledger) -> str:
    kinds: dict[str, int] = {}
    for call in list(ledger.calls):
        name = "returned" if call.result else type(call.error).__name__
        if isinstance(call.error, ServiceError):
            name += f"({call.error.code})"
        kinds[name] = kinds.get(name, 0) + 1
    return ", ".join(f"{name}: {n}" for name, n in sorted(kinds.items()))


def reckon(stack: LocalStack, ledger: Ledger) -> None:
    """Every call returned or ended open (or refused as not counted); asking again with each
    open key settles it; the sum is exactly the returned adds plus the settled ones that
    counted."""
    unexpected = [
        call.error
        for call in ledger.calls
        if call.result is None
        and not isinstance(call.error, OutcomeUnknown)
        and not (isinstance(call.error, ServiceError) and call.error.code in NOT_COUNTED)
    ]
    assert unexpected == [], f"{unexpected[:5]} ({summary(ledger)})"
    expected = sum(call.result.added for call in ledger.calls if call.result is not None)
    assert expected == sum(c.number for c in ledger.calls if c.result is not None)
    open_calls = [call for call in ledger.calls if isinstance(call.error, OutcomeUnknown)]
    assert open_calls, "the fault left some outcomes open"
    with Client(stack.config.url, deadline=SETTLE_DEADLINE_S) as client:
        settled = replays = 0
        for call in open_calls:
            assert isinstance(call.error, OutcomeUnknown)
            assert call.error.key is not None, "an open outcome carries its key"
            result = settle(client, call.number, call.error.key)
            if result is not None:
                assert result.key == call.error.key
                assert result.added == call.number
                expected += result.added
                settled += 1
                replays += result.replayed
        final = client.sum().sum
    replayed = replays + sum(c.result.replayed for c in ledger.calls if c.result is not None)
    assert replayed > 0, "some open outcomes had counted, and asking again with the key said so"
    assert final == Decimal(expected), (
        f"sum {final}, expected {expected}: {settled} of {len(open_calls)} open adds counted "
        f"({summary(ledger)})"
    )


def settle(client: Client, number: int, key: str) -> AddResult | None:
    """The add under `key` asked again: its result if it counted (earlier, or now), None if its
    key was refused for good (it never counted)."""
    try:
        return client.add(number, key=key)
    except ServiceError as refused:
        if refused.code is ErrorCode.IDEMPOTENCY_KEY_REFUSED:
            return None
        raise
