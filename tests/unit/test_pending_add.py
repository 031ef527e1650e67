"""An add's decisions: when "nothing changed" may be said, when a fence must come first."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from prometheus_client import REGISTRY

from abacus.node import records
from abacus.node.errors import outcome_unknown, unavailable
from abacus.node.pending_add import (
    Committed,
    ExecEvent,
    Exposure,
    ImpossibleTransition,
    Others,
    Outage,
    Outcome,
    PendingAdd,
    new_commit_id,
)
from abacus.node.settings import RESOLVE_GRACE_S
from tests.unit.commit_support import lose_exec, make_add

T = TypeVar("T")
REFUSAL = unavailable("test refusal; nothing changed")


def run(test: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(test())


def code(outcome: Outcome | None) -> str | None:
    if outcome is None:
        return None
    return "200" if isinstance(outcome, Committed) else outcome.code


@pytest.mark.parametrize(
    ("others", "lost_exec", "expected"),
    [
        # Nobody else carries it and nothing was sent: the refusal is true as it stands.
        (Others.NONE, False, "unavailable"),
        # Our own EXEC may still land, or another request carries the key: fence first.
        (Others.NONE, True, None),
        (Others.SAME_KEY, False, None),
        (Others.SAME_KEY, True, None),
        # Carriers we cannot see: no fence helps.
        (Others.UNSEEN, False, "outcome_unknown"),
        (Others.UNSEEN, True, "outcome_unknown"),
    ],
)
def test_refuse(others: Others, lost_exec: bool, expected: str | None) -> None:
    async def test() -> None:
        add = make_add(1, others=others)
        if lost_exec:
            lose_exec(add)
        answer = add.refuse(REFUSAL, asyncio.get_running_loop().time())
        assert code(answer) == expected
        assert add.fencing == (expected is None)

    run(test)


def test_no_fence_without_redis_or_past_the_grace() -> None:
    async def test() -> None:
        now = asyncio.get_running_loop().time()
        add = make_add(1, others=Others.SAME_KEY)
        assert code(add.refuse(REFUSAL, now, can_fence=False)) == "outcome_unknown"
        late = make_add(1, others=Others.SAME_KEY, deadline_in=-RESOLVE_GRACE_S)
        assert code(late.refuse(REFUSAL, late.answer_by)) == "outcome_unknown"
        assert not add.fencing
        assert not late.fencing

    run(test)


def test_check_time_refuses_at_the_deadline_and_gives_up_fencing_at_the_grace() -> None:
    async def test() -> None:
        add = make_add(1, others=Others.SAME_KEY, deadline_in=1.0)
        start = add.deadline - 1.0
        assert add.check_time(start, 0.75) is None
        assert add.check_time(add.deadline, 0.75) is None, "past the deadline: fence first"
        assert add.fencing
        assert add.decide_by == add.answer_by
        assert code(add.check_time(add.answer_by, 0.75)) == "outcome_unknown"

    run(test)


def test_check_time_gives_up_early_when_redis_refuses_connections() -> None:
    async def test() -> None:
        add = make_add(1, deadline_in=10.0)
        now = asyncio.get_running_loop().time()
        add.redis_unreachable(now - 1.0, stalled=False)
        assert add.check_time(now - 0.5, 0.75) is None, "not yet: a restart that quick is missed"
        assert code(add.check_time(now, 0.75)) == "unavailable"

    run(test)


def test_records_of_a_fence() -> None:
    async def test() -> None:
        mine = make_add(5, others=Others.SAME_KEY)
        assert mine.refuse(REFUSAL, asyncio.get_running_loop().time()) is None
        own_fence = records.fence(mine.commit_id, mine.added).encode()
        assert mine.outcome_of_record(own_fence) is REFUSAL, "our fence landed: our refusal"
        other = make_add(5, others=Others.SAME_KEY, client_key=True)
        assert code(other.outcome_of_record(own_fence)) == "idempotency_key_refused"
        different = make_add(6, others=Others.SAME_KEY, client_key=True)
        assert code(different.outcome_of_record(own_fence)) == "idempotency_key_reused"

    run(test)


def test_pending_gauge_counts_adds_until_answered() -> None:
    def pending() -> float:
        value = REGISTRY.get_sample_value("abacus_adds_pending")
        assert value is not None
        return value

    async def test() -> None:
        before = pending()
        add = make_add(1)
        assert pending() == before + 1
        add.resolve(REFUSAL)
        add.resolve(REFUSAL)  # a second answer is ignored, and not counted again
        assert pending() == before
        assert add.future.result() is REFUSAL

    run(test)


def outcomes(outcome: str) -> float:
    return REGISTRY.get_sample_value("abacus_add_outcomes_total", {"outcome": outcome}) or 0


def test_every_answer_is_counted_once_by_its_outcome() -> None:
    """503 alone cannot tell `unavailable` from `outcome_unknown`: the outcome metric can."""
    answers: list[tuple[Outcome, str]] = [
        (Committed('{"new_sum": 1}', replayed=False), "counted"),
        (Committed('{"new_sum": 1}', replayed=True), "replayed"),
        (REFUSAL, "unavailable"),
        (outcome_unknown("test"), "outcome_unknown"),
    ]

    async def test() -> None:
        for answer, label in answers:
            before = outcomes(label)
            add = make_add(1)
            add.resolve(answer)
            add.resolve(answer)  # ignored, as the answer is
            assert outcomes(label) == before + 1, label

    run(test)


def _child_ids(queue: multiprocessing.Queue[str]) -> None:
    queue.put(new_commit_id())


def test_commit_ids_are_unique_in_a_process_and_across_a_fork() -> None:
    ours = {new_commit_id() for _ in range(1000)}
    assert len(ours) == 1000
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = context.Queue()
    child = context.Process(target=_child_ids, args=(queue,))
    child.start()
    theirs = queue.get(timeout=10)
    child.join(10)
    # The child continues the parent's counter, so only a prefix of its own keeps ids apart.
    assert theirs[:32] != next(iter(ours))[:32]
    assert theirs not in ours


# ----- its state: every event from every state ----------------------------------------------

NOT_SENT, SENT, MAYBE_APPLIED, SENT_AGAIN, APPLIED = (
    Exposure.NOT_SENT,
    Exposure.SENT,
    Exposure.MAYBE_APPLIED,
    Exposure.SENT_AGAIN,
    Exposure.APPLIED,
)

# How the ledger reports each event.
REPORT: dict[ExecEvent, Callable[[PendingAdd], None]] = {
    ExecEvent.SENT: PendingAdd.exec_sent,
    ExecEvent.APPLIED: PendingAdd.exec_applied,
    ExecEvent.DISCARDED: PendingAdd.exec_discarded,
    ExecEvent.REFUSED: PendingAdd.exec_refused,
    ExecEvent.REPLY_LOST: PendingAdd.exec_reply_lost,
}

# The events that take a fresh add to each state.
PATH_TO: dict[Exposure, list[ExecEvent]] = {
    NOT_SENT: [],
    SENT: [ExecEvent.SENT],
    MAYBE_APPLIED: [ExecEvent.SENT, ExecEvent.REPLY_LOST],
    SENT_AGAIN: [ExecEvent.SENT, ExecEvent.REPLY_LOST, ExecEvent.SENT],
    APPLIED: [ExecEvent.SENT, ExecEvent.APPLIED],
}

# What each event makes of each state, written out whole; None: impossible, refused.
AFTER: dict[Exposure, dict[ExecEvent, Exposure | None]] = {
    # Only an EXEC can change what Redis may hold; no reply comes without one.
    NOT_SENT: {
        ExecEvent.SENT: SENT,
        ExecEvent.APPLIED: None,
        ExecEvent.DISCARDED: None,
        ExecEvent.REFUSED: None,
        ExecEvent.REPLY_LOST: None,
    },
    # One EXEC in flight at a time; a discarded one leaves the add as it was before it.
    SENT: {
        ExecEvent.SENT: None,
        ExecEvent.APPLIED: APPLIED,
        ExecEvent.DISCARDED: NOT_SENT,
        ExecEvent.REFUSED: NOT_SENT,
        ExecEvent.REPLY_LOST: MAYBE_APPLIED,
    },
    MAYBE_APPLIED: {
        ExecEvent.SENT: SENT_AGAIN,
        ExecEvent.APPLIED: None,
        ExecEvent.DISCARDED: None,
        ExecEvent.REFUSED: None,
        ExecEvent.REPLY_LOST: None,
    },
    # A discarded EXEC does not settle the earlier lost one: the add stays maybe applied.
    SENT_AGAIN: {
        ExecEvent.SENT: None,
        ExecEvent.APPLIED: APPLIED,
        ExecEvent.DISCARDED: MAYBE_APPLIED,
        ExecEvent.REFUSED: MAYBE_APPLIED,
        ExecEvent.REPLY_LOST: MAYBE_APPLIED,
    },
    # An applied add is answered from its record and never sent again.
    APPLIED: {
        ExecEvent.SENT: None,
        ExecEvent.APPLIED: None,
        ExecEvent.DISCARDED: None,
        ExecEvent.REFUSED: None,
        ExecEvent.REPLY_LOST: None,
    },
}


def add_in(state: Exposure) -> PendingAdd:
    """A fresh add taken to `state` by the events the ledger would report (inside a loop)."""
    add = make_add(1)
    for event in PATH_TO[state]:
        REPORT[event](add)
    assert add.exposure is state
    return add


@pytest.mark.parametrize("event", list(ExecEvent))
@pytest.mark.parametrize("state", list(Exposure))
def test_every_exec_event_from_every_state(state: Exposure, event: ExecEvent) -> None:
    async def test() -> None:
        add = add_in(state)
        after = AFTER[state][event]
        if after is None:
            with pytest.raises(ImpossibleTransition):
                REPORT[event](add)
            assert add.exposure is state, "a refused event changes nothing"
        else:
            REPORT[event](add)
            assert add.exposure is after

    run(test)


@pytest.mark.parametrize(
    ("state", "may_be_in_redis", "in_flight"),
    [
        (NOT_SENT, False, False),
        (SENT, True, True),
        (MAYBE_APPLIED, True, False),
        (SENT_AGAIN, True, True),
        (APPLIED, True, False),
    ],
)
def test_what_the_decisions_read_of_each_state(
    state: Exposure, may_be_in_redis: bool, in_flight: bool
) -> None:
    async def test() -> None:
        add = add_in(state)
        assert add.may_be_in_redis is may_be_in_redis
        assert add.exec_in_flight is in_flight

    run(test)


@pytest.mark.parametrize(
    ("path", "refused_at_once"),
    [
        ([], True),
        # A conflict, or an error reply: Redis discarded the transaction, nothing can commit.
        ([ExecEvent.SENT, ExecEvent.DISCARDED], True),
        ([ExecEvent.SENT, ExecEvent.REFUSED], True),
        # A lost reply may have counted, and a discarded resend does not settle that.
        ([ExecEvent.SENT, ExecEvent.REPLY_LOST], False),
        ([ExecEvent.SENT, ExecEvent.REPLY_LOST, ExecEvent.SENT, ExecEvent.DISCARDED], False),
        ([ExecEvent.SENT, ExecEvent.REPLY_LOST, ExecEvent.SENT, ExecEvent.REFUSED], False),
    ],
)
def test_a_sole_add_is_refused_at_once_only_while_nothing_of_it_can_be_in_redis(
    path: list[ExecEvent], refused_at_once: bool
) -> None:
    async def test() -> None:
        add = make_add(1)
        for event in path:
            REPORT[event](add)
        now = asyncio.get_running_loop().time()
        budget = unavailable("test budget refusal")
        if refused_at_once:
            assert add.refuse_for_budget(budget) is budget
            assert add.refuse(REFUSAL, now) is REFUSAL
            assert not add.fencing
        else:
            assert add.refuse_for_budget(budget) is None, "only applying or fencing it can tell"
            assert add.refuse(REFUSAL, now) is None
            assert add.fencing, "a fence first"

    run(test)


def test_an_outage_runs_from_the_first_refused_attempt_until_one_reaches_redis() -> None:
    async def test() -> None:
        add = make_add(1)
        seen = [add.outage]
        add.redis_unreachable(1.0, stalled=True)  # a stall may end before the deadline
        seen.append(add.outage)
        add.redis_unreachable(2.0, stalled=False)
        seen.append(add.outage)
        add.redis_unreachable(3.0, stalled=False)  # it goes on from the first
        seen.append(add.outage)
        add.redis_unreachable(4.0, stalled=True)  # nor does a stall end it
        seen.append(add.outage)
        add.redis_reached()
        seen.append(add.outage)
        add.redis_unreachable(5.0, stalled=False)  # a new run starts afresh
        seen.append(add.outage)
        first, again = Outage(since=2.0), Outage(since=5.0)
        assert seen == [None, None, first, first, first, None, again]
        assert not again.lasted(5.5, 0.75)
        assert again.lasted(5.75, 0.75)

    run(test)


def test_a_fencing_add_gives_up_when_redis_stays_unreachable() -> None:
    async def test() -> None:
        add = make_add(1, others=Others.SAME_KEY, deadline_in=10.0)
        now = asyncio.get_running_loop().time()
        assert add.refuse(REFUSAL, now) is None
        add.redis_unreachable(now, stalled=False)
        assert add.check_time(now + 0.5, 0.75) is None, "the fence may still be written"
        assert code(add.check_time(now + 0.75, 0.75)) == "outcome_unknown"

    run(test)


def ambiguous_resolved(resolution: str) -> float:
    labels = {"resolution": resolution}
    return REGISTRY.get_sample_value("abacus_ambiguous_adds_resolved_total", labels) or 0


def test_an_add_is_ambiguous_once_redis_was_unreachable_while_it_may_have_counted() -> None:
    async def test() -> None:
        sent_nothing = make_add(1)
        sent_nothing.redis_unreachable(1.0, stalled=False)
        add = lose_exec(make_add(2))
        # Marked by the lane's report of the failed attempt, not by the lost reply itself: the
        # metrics count adds whose EXEC was lost to an unreachable Redis.
        seen = [add.was_ambiguous]
        add.redis_unreachable(1.0, stalled=True)
        seen.append(add.was_ambiguous)
        add.redis_reached()
        add.exec_sent()
        add.exec_applied()
        seen.append(add.was_ambiguous)  # it stays one of the adds the metrics follow
        assert not sent_nothing.was_ambiguous, "nothing of it can be in Redis"
        assert seen == [False, True, True]
        before = ambiguous_resolved("counted")
        add.resolve(Committed("{}", replayed=False))
        assert ambiguous_resolved("counted") == before + 1

    run(test)
