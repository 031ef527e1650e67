"""The commit lane over a scripted Redis: batches, retries, lost EXECs, stalls, duplicates, and
the rule that "nothing changed" is said only when it will stay true."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from prometheus_client import REGISTRY

from abacus.node import records
from abacus.node.group_commit import UNREACHABLE_GIVE_UP_S, GroupCommitter, backoff
from abacus.node.memory_watch import MemoryWatch
from abacus.node.pending_add import Committed, Exposure, Others, Outcome, PendingAdd
from abacus.node.settings import RESOLVE_GRACE_S
from tests.unit.commit_support import SUM_KEY, committer, quota
from tests.unit.scripted_redis import (
    CONFLICT,
    DROPPED,
    GARBLED,
    LOST,
    STALL,
    ScriptedRedis,
    error,
)

T = TypeVar("T")
DEADLINE_S = 0.3
# Timers fire a little late on a loaded machine; the bounds below are the contract's, plus this.
TIMER_SLACK_S = 0.3


def run(test: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(test())


def code(outcome: Outcome) -> str:
    if isinstance(outcome, Committed):
        return "200 replay" if outcome.replayed else "200"
    return outcome.code


async def answered(add: PendingAdd) -> tuple[str, float]:
    """The add's answer and how long after its submission it came."""
    loop = asyncio.get_running_loop()
    submitted = add.deadline - DEADLINE_S
    outcome = await add.future
    return code(outcome), loop.time() - submitted


async def closed(owner: GroupCommitter) -> None:
    await owner.close()


def test_queued_adds_share_transactions_and_each_gets_its_running_total() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        owner = committer(server)
        adds = [owner.submit(Decimal(n), None, 60) for n in range(1, 21)]
        outcomes = [await add.future for add in adds]
        await closed(owner)
        assert all(isinstance(o, Committed) and not o.replayed for o in outcomes)
        new_sums = sorted(records.added_in(o.body) for o in outcomes if isinstance(o, Committed))
        assert new_sums == [Decimal(n) for n in range(1, 21)]
        assert server.get(SUM_KEY) == b"210"
        assert server.execs_sent < 20, "adds queued while a transaction was in flight shared one"

    run(test)


def test_one_transaction_per_add_when_max_batch_is_one() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        owner = committer(server, max_batch=1)
        adds = [owner.submit(Decimal(n), None, 60) for n in range(1, 6)]
        for add in adds:
            await add.future
        await closed(owner)
        assert server.get(SUM_KEY) == b"15"
        assert server.execs_sent >= 5

    run(test)


def test_a_conflict_is_retried_until_it_commits() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        server.plan(["ok", CONFLICT, "ok", CONFLICT])
        owner = committer(server)
        add = owner.submit(Decimal(5), None, 60)
        assert code(await add.future) == "200"
        await closed(owner)
        assert add.conflicts == 2
        assert add.attempts == 3
        assert server.get(SUM_KEY) == b"5"

    run(test)


@pytest.mark.parametrize("fault", [LOST, DROPPED])
def test_a_lost_exec_is_resolved_and_counted_exactly_once(fault: str) -> None:
    """LOST: the EXEC was applied, the reply never came; DROPPED: it never reached Redis. The
    node cannot tell them apart, and must neither lose the add nor count it twice."""

    async def test() -> None:
        server = ScriptedRedis()
        server.plan(["ok", fault])
        owner = committer(server)
        add = owner.submit(Decimal(7), None, 60)
        assert code(await add.future) == "200"
        await closed(owner)
        assert add.was_ambiguous
        assert server.get(SUM_KEY) == b"7"
        # Applied: the next attempt found its record; dropped: the next attempt applied it.
        assert server.execs_sent == (1 if fault == LOST else 2)

    run(test)


def test_an_unreadable_exec_reply_is_taken_as_maybe_applied_and_resolved_by_the_record() -> None:
    """A reply that cannot be read is no sign of an unreachable Redis (the lane logs it as a bug
    and tries again), but the EXEC went out all the same."""

    async def test() -> None:
        server = ScriptedRedis()
        server.plan(["ok", GARBLED])
        owner = committer(server)
        add = owner.submit(Decimal(7), "abacus:sum:idem:k", 60, others=Others.SAME_KEY)
        assert code(await add.future) == "200"
        await closed(owner)
        assert add.exposure is Exposure.MAYBE_APPLIED, "answered from its own record"
        assert add.outage is None
        assert server.execs_sent == 1
        assert server.get(SUM_KEY) == b"7"

    run(test)


@pytest.mark.parametrize(
    ("others", "expected", "bound"),
    [
        (Others.NONE, "unavailable", DEADLINE_S),
        (Others.SAME_KEY, "outcome_unknown", DEADLINE_S + RESOLVE_GRACE_S),
        (Others.UNSEEN, "outcome_unknown", DEADLINE_S),
    ],
)
def test_a_stalled_redis_gets_a_truthful_answer_by_the_bound(
    others: Others, expected: str, bound: float
) -> None:
    """Nothing was sent: an add only this request carries may say "nothing changed"; a shared
    one needs a fence, which a stalled Redis cannot take; an unseen carrier rules it out."""

    async def test() -> None:
        server = ScriptedRedis()
        server.plan([STALL] * 100)
        owner = committer(server, deadline_s=DEADLINE_S)
        add = owner.submit(Decimal(1), "abacus:sum:idem:k", 60, others=others)
        answer, took = await answered(add)
        await closed(owner)
        assert answer == expected
        assert took < bound + TIMER_SLACK_S
        assert server.execs_sent == 0

    run(test)


def test_an_exec_sent_into_a_stall_is_never_answered_nothing_changed() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        server.plan(["ok"] + [STALL] * 100)
        owner = committer(server, deadline_s=DEADLINE_S)
        add = owner.submit(Decimal(1), None, 60)
        answer, took = await answered(add)
        await closed(owner)
        assert answer == "outcome_unknown"
        assert took < DEADLINE_S + RESOLVE_GRACE_S + TIMER_SLACK_S

    run(test)


def test_a_connection_that_never_finishes_its_handshake_is_bounded() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        owner = committer(server, deadline_s=DEADLINE_S, hang=True)
        sole = owner.submit(Decimal(1), None, 60)
        shared = owner.submit(Decimal(2), "abacus:sum:idem:k", 60, others=Others.SAME_KEY)
        answer, took = await answered(sole)
        assert answer == "unavailable"
        assert took < DEADLINE_S + TIMER_SLACK_S
        answer, took = await answered(shared)
        await closed(owner)
        assert answer == "outcome_unknown"
        assert took < DEADLINE_S + RESOLVE_GRACE_S + TIMER_SLACK_S
        assert server.sent == [], "no command ever went out"

    run(test)


def test_redis_refusing_connections_is_reported_before_the_deadline() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        server.plan([DROPPED] * 1000)
        owner = committer(server, deadline_s=5.0)
        sole = owner.submit(Decimal(1), None, 60)
        shared = owner.submit(Decimal(2), "abacus:sum:idem:k", 60, others=Others.SAME_KEY)
        outcomes = [code(await sole.future), code(await shared.future)]
        await closed(owner)
        assert outcomes == ["unavailable", "outcome_unknown"], "no fence can be written"
        assert asyncio.get_running_loop().time() < sole.deadline, "well before the deadline"
        assert sole.attempts > 1, f"kept trying for {UNREACHABLE_GIVE_UP_S} s first"

    run(test)


def test_a_duplicate_in_the_same_batch_gets_the_replay() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        owner = committer(server)
        first = owner.submit(Decimal(3), "abacus:sum:idem:k", 60, others=Others.SAME_KEY)
        second = owner.submit(Decimal(3), "abacus:sum:idem:k", 60, others=Others.SAME_KEY)
        other = owner.submit(Decimal(4), "abacus:sum:idem:k", 60, others=Others.SAME_KEY)
        outcomes = [code(await add.future) for add in (first, second, other)]
        await closed(owner)
        assert outcomes == ["200", "200 replay", "idempotency_key_reused"]
        assert server.get(SUM_KEY) == b"3"

    run(test)


def test_a_duplicate_behind_a_leader_whose_exec_is_stuck_is_not_told_nothing_changed() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        server.plan(["ok"] + [STALL] * 100)  # the leader's EXEC goes out, then Redis stalls
        owner = committer(server, deadline_s=DEADLINE_S)
        leader = owner.submit(Decimal(3), "abacus:sum:idem:k", 60, others=Others.SAME_KEY)
        await asyncio.sleep(0)  # the leader's batch is taken; the duplicate queues behind it
        duplicate = owner.submit(Decimal(3), "abacus:sum:idem:k", 60, others=Others.SAME_KEY)
        outcomes = [code(await leader.future), code(await duplicate.future)]
        await closed(owner)
        assert outcomes == ["outcome_unknown", "outcome_unknown"]

    run(test)


def test_a_shared_add_out_of_time_is_fenced_then_refused_and_the_key_stays_refused() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        owner = committer(server, deadline_s=0.0)  # out of time before its first attempt
        add = owner.submit(
            Decimal(3), "abacus:sum:idem:k", 60, others=Others.SAME_KEY, client_key=True
        )
        assert code(await add.future) == "unavailable"
        await closed(owner)
        assert records.read(server.get("abacus:sum:idem:k") or b"").body is None, "fenced"
        assert server.versions[b"abacus:sum"] == 1, "the fence rewrote the sum"
        later = committer(server)
        again = later.submit(
            Decimal(3), "abacus:sum:idem:k", 60, others=Others.SAME_KEY, client_key=True
        )
        reused = later.submit(
            Decimal(4), "abacus:sum:idem:k", 60, others=Others.SAME_KEY, client_key=True
        )
        assert code(await again.future) == "idempotency_key_refused"
        assert code(await reused.future) == "idempotency_key_reused"
        await closed(later)
        assert server.get(SUM_KEY) == b"0"

    run(test)


def test_closing_refuses_at_once_only_what_nobody_else_carries() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        owner = committer(server)
        await owner.close()
        sole = owner.submit(Decimal(1), None, 60)
        assert sole.outcome is not None, "answered at once"
        assert code(sole.outcome) == "unavailable"
        shared = owner.submit(Decimal(2), "abacus:sum:idem:k", 60, others=Others.SAME_KEY)
        assert shared.outcome is None, "a fence must commit first"
        assert code(await shared.future) == "unavailable"
        await owner.close()
        assert records.read(server.get("abacus:sum:idem:k") or b"").body is None

    run(test)


def budget_refusals(reason: str) -> float:
    return REGISTRY.get_sample_value("abacus_key_budget_refusals_total", {"reason": reason}) or 0


def test_a_full_key_store_answers_new_keys_at_once_and_lets_the_rest_through() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        memory = MemoryWatch(limit=0.8)
        memory.observe({"used_memory": 90, "maxmemory": 100})
        owner = committer(server, memory=memory)
        before = budget_refusals("key_store_full")
        key = "abacus:sum:idem:k"
        keyed = owner.submit(Decimal(1), key, 60, others=Others.SAME_KEY, client_key=True)
        duplicate = owner.submit(Decimal(1), key, 60, others=Others.SAME_KEY, client_key=True)
        keyless = owner.submit(Decimal(2), None, 60)
        assert code(await keyed.future) == "key_store_full"
        assert code(await duplicate.future) == "key_store_full", "it asked for itself"
        assert code(await keyless.future) == "200"
        assert budget_refusals("key_store_full") == before + 2
        # Memory freed (as the poller would see it): the same key is taken, and counts once.
        memory.observe({"used_memory": 10, "maxmemory": 100})
        again = owner.submit(Decimal(1), key, 60, others=Others.SAME_KEY, client_key=True)
        assert code(await again.future) == "200"
        await closed(owner)
        assert server.get(SUM_KEY) == b"3"

    run(test)


def test_a_client_s_quota_holds_across_batches() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        owner = committer(server)
        before = budget_refusals("key_quota_exhausted")
        answers = []
        for n in range(1, 5):
            add = owner.submit(
                Decimal(n),
                f"abacus:sum:idem:k{n}",
                60,
                others=Others.SAME_KEY,
                client_key=True,
                quota=quota(2),
            )
            answers.append(code(await add.future))  # one batch each: the counter carries it
        await closed(owner)
        assert answers == ["200", "200", "key_quota_exhausted", "key_quota_exhausted"]
        assert server.get(SUM_KEY) == b"3"
        assert budget_refusals("key_quota_exhausted") == before + 2

    run(test)


NOREPLICAS = "NOREPLICAS Not enough good replicas to write."


def test_a_primary_refusing_writes_is_waited_out_until_the_deadline_then_answered_truly() -> None:
    """READONLY / NOREPLICAS (a failover under way): nothing was applied, so the add keeps trying,
    with the backoff for an unreachable Redis, until its deadline; then it is refused at once if
    nobody else carries it, or is unknown (no fence can be written) if someone may."""

    async def test() -> None:
        server = ScriptedRedis()
        server.plan(["ok", error(NOREPLICAS)] * 200)
        owner = committer(server, deadline_s=DEADLINE_S)
        sole = owner.submit(Decimal(1), None, 60)
        shared = owner.submit(Decimal(2), "abacus:sum:idem:k", 60, others=Others.SAME_KEY)
        (sole_answer, sole_took), (shared_answer, shared_took) = [
            await answered(sole),
            await answered(shared),
        ]
        await closed(owner)
        assert sole_answer == "unavailable"
        assert DEADLINE_S <= sole_took < DEADLINE_S + TIMER_SLACK_S
        assert shared_answer == "outcome_unknown"
        assert shared_took < DEADLINE_S + RESOLVE_GRACE_S + TIMER_SLACK_S
        assert sole.attempts > 1
        assert server.get(SUM_KEY) is None

    run(test)


def test_a_primary_that_takes_writes_again_within_the_deadline_commits_the_add() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        server.plan(["ok", error("READONLY You can't write against a read only replica.")] * 2)
        owner = committer(server, deadline_s=5.0)
        add = owner.submit(Decimal(3), None, 60)
        outcome = await add.future
        await closed(owner)
        assert code(outcome) == "200"
        assert add.attempts == 3
        assert server.get(SUM_KEY) == b"3"

    run(test)


def test_the_backoff_stays_within_its_cap_after_any_number_of_failures() -> None:
    assert 0 <= backoff(5000, 0.01, 0.2) <= 0.2
