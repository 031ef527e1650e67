"""One optimistic transaction, fed a scripted Redis: what it writes and what it answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from abacus.node import ledger, records
from abacus.node.errors import ApiError, unavailable
from abacus.node.json_body import parse
from abacus.node.pending_add import Committed, Exposure, Others, PendingAdd
from abacus.node.replica_acks import ReplicaAcks
from abacus.node.settings import RESOLVE_GRACE_S
from tests.unit.commit_support import SUM_KEY, keyed_add, lose_exec, make_add, quota
from tests.unit.scripted_redis import (
    CONFLICT,
    DROPPED,
    GARBLED,
    LOST,
    STALL,
    ScriptedConnection,
    ScriptedRedis,
    error,
)

T = TypeVar("T")


def run(test: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(test())


async def attempt(
    server: ScriptedRedis,
    adds: Sequence[PendingAdd],
    *,
    store_full: bool = False,
    acks: ReplicaAcks | None = None,
) -> ledger.AttemptResult:
    connection: Any = ScriptedConnection(server)
    return await ledger.attempt(
        connection, SUM_KEY, "unit-node", adds, store_full=store_full, acks=acks
    )


def answers(result: ledger.AttemptResult) -> list[str]:
    """Each resolved add's answer: "200", "200 replay" or the error code."""
    out = []
    for _, outcome in result.resolved:
        if isinstance(outcome, Committed):
            out.append("200 replay" if outcome.replayed else "200")
        else:
            out.append(outcome.code)
    return out


def test_a_batch_commits_with_running_totals_and_one_record_each() -> None:
    async def test() -> None:
        server = ScriptedRedis(data={b"abacus:sum": b"10"})
        adds = [make_add("0.1", "r1"), make_add("0.2", "r2"), make_add(-5, "r3")]
        result = await attempt(server, adds)
        assert answers(result) == ["200", "200", "200"]
        assert result.committed == 3
        bodies = [parse(o.body.encode()) for _, o in result.resolved if isinstance(o, Committed)]
        assert [b["new_sum"] for b in bodies] == [Decimal("10.1"), Decimal("10.3"), Decimal("5.3")]
        assert server.get(SUM_KEY) == b"5.3"
        record = records.read(server.get("r2") or b"")
        assert record.commit_id == adds[1].commit_id
        assert record.body is not None
        assert json.loads(record.body)["added"] == 0.2
        assert all(add.exposure is Exposure.APPLIED for add in adds)

    run(test)


def test_a_conflict_sends_the_batch_back_and_applies_nothing() -> None:
    async def test() -> None:
        server = ScriptedRedis(data={b"abacus:sum": b"1"})
        server.plan(["ok", CONFLICT])
        adds = [make_add(2, "r1"), make_add(3, "r2")]
        result = await attempt(server, adds)
        assert result.resolved == []
        assert result.retry == adds
        assert result.committed == 0
        assert server.get(SUM_KEY) == b"1"
        assert server.get("r1") is None
        assert all(add.exposure is Exposure.NOT_SENT for add in adds), "nothing was applied"

    run(test)


def test_a_lost_exec_reply_raises_and_leaves_the_add_maybe_applied() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        server.plan(["ok", LOST])
        add = make_add(4, "r1")
        with pytest.raises(RedisConnectionError):
            await attempt(server, [add])
        assert add.exposure is Exposure.MAYBE_APPLIED, "the EXEC went out: it may have counted"
        assert server.get(SUM_KEY) == b"4", "and here it did"

    run(test)


def test_a_connection_dropped_before_the_watch_sends_no_exec() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        server.plan([DROPPED])
        add = make_add(4, "r1")
        with pytest.raises(RedisConnectionError):
            await attempt(server, [add])
        assert add.exposure is Exposure.NOT_SENT
        assert server.execs_sent == 0

    run(test)


def test_records_found_under_the_watch_decide_the_add() -> None:
    async def test() -> None:
        server = ScriptedRedis(data={b"abacus:sum": b"7"})
        own = make_add(7, "own")
        replayed = make_add(7, "other")
        reused = make_add(8, "other2")
        fenced_client = make_add(9, "fenced1", others=Others.SAME_KEY, client_key=True)
        fenced_retry = make_add(9, "fenced2", others=Others.SAME_KEY)
        body = '{"new_sum": 7, "added": 7, "timestamp": "t", "node_id": "n"}'
        server.data[b"own"] = records.committed(own.commit_id, body).encode()
        server.data[b"other"] = records.committed("someone", body).encode()
        server.data[b"other2"] = records.committed("someone", body).encode()
        server.data[b"fenced1"] = records.fence("someone", "9").encode()
        server.data[b"fenced2"] = records.fence("someone", "9").encode()
        adds = [own, replayed, reused, fenced_client, fenced_retry]
        result = await attempt(server, adds)
        assert answers(result) == [
            "200",
            "200 replay",
            "idempotency_key_reused",
            "idempotency_key_refused",
            "unavailable",
        ]
        assert server.execs_sent == 0, "nothing left to write: no transaction"
        assert server.get(SUM_KEY) == b"7"

    run(test)


def test_out_of_time_an_add_nobody_else_carries_is_refused_without_a_write() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        add = make_add(5, "r1", deadline_in=-0.01)
        result = await attempt(server, [add])
        assert answers(result) == ["unavailable"]
        assert server.execs_sent == 0
        assert server.get("r1") is None

    run(test)


@pytest.mark.parametrize("others", [Others.SAME_KEY, Others.NONE])
def test_out_of_time_a_shared_or_maybe_applied_add_is_fenced_before_it_is_refused(
    others: Others,
) -> None:
    async def test() -> None:
        server = ScriptedRedis(data={b"abacus:sum": b"3"})
        add = make_add(5, "r1", others=others, deadline_in=-0.01)
        if others is Others.NONE:
            lose_exec(add)  # a sole add needs a fence only after an EXEC
        result = await attempt(server, [add])
        assert answers(result) == ["unavailable"]
        record = records.read(server.get("r1") or b"")
        assert record.body is None, "a fence, not the add"
        assert record.commit_id == add.commit_id
        assert server.get(SUM_KEY) == b"3", "the sum is written, unchanged"
        assert server.versions[b"abacus:sum"] == 1

    run(test)


def test_past_the_grace_no_fence_is_written_and_the_answer_is_unknown() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        add = make_add(5, "r1", others=Others.SAME_KEY, deadline_in=-RESOLVE_GRACE_S - 0.01)
        result = await attempt(server, [add])
        assert answers(result) == ["outcome_unknown"]
        assert server.execs_sent == 0, "a late fence could abort the carrier nginx moved it to"

    run(test)


def test_a_carrier_that_sees_another_carriers_fence_stops() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        fencer = make_add(5, "idem", others=Others.SAME_KEY, client_key=True, deadline_in=-0.01)
        assert answers(await attempt(server, [fencer])) == ["unavailable"]
        late = make_add(5, "idem", others=Others.SAME_KEY, client_key=True)
        assert answers(await attempt(server, [late])) == ["idempotency_key_refused"]
        assert server.get(SUM_KEY) == b"0"

    run(test)


def test_out_of_range_sole_add_is_refused_at_once_a_shared_one_fenced() -> None:
    async def test() -> None:
        server = ScriptedRedis(data={b"abacus:sum": b"9" * 30})
        sole = make_add("1" + "0" * 29, "sole")
        shared = make_add("1" + "0" * 29, "shared", others=Others.SAME_KEY, client_key=True)
        fits = make_add(-1, "fits")
        result = await attempt(server, [sole, shared, fits])
        assert answers(result) == ["sum_out_of_range", "200", "sum_out_of_range"]
        assert [add for add, _ in result.resolved] == [sole, fits, shared]
        assert server.get("sole") is None
        assert records.read(server.get("shared") or b"").body is None, "fenced"
        assert server.get(SUM_KEY) == b"9" * 29 + b"8"

    run(test)


def test_an_error_reply_refuses_sole_adds_and_fences_need_a_second_chance() -> None:
    async def test() -> None:
        oom = "OOM command not allowed when used memory > 'maxmemory'"
        server = ScriptedRedis()
        server.plan(["ok", error(oom)])
        sole = make_add(1, "sole")
        shared = make_add(2, "shared", others=Others.SAME_KEY, client_key=True)
        result = await attempt(server, [sole, shared])
        assert answers(result) == ["unavailable"]
        assert "OOM" in str(dict(result.resolved)[sole])
        assert result.retry == [shared], "it goes back to write its fence"
        assert shared.fencing
        server.plan(["ok", error(oom)])
        again = await attempt(server, [shared])
        assert answers(again) == ["outcome_unknown"], "no fence could be written"
        assert "OOM" in str(dict(again.resolved)[shared])

    run(test)


def test_each_round_trip_is_bounded_by_the_earliest_decision_due() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        server.plan([STALL])
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RedisTimeoutError):
            await attempt(server, [make_add(1, "r1"), make_add(2, "r2", deadline_in=0.05)])
        # The round trip's own limit is 0.5 s; the second add's deadline cut it to 0.05 s.
        assert loop.time() - started < ledger.ROUNDTRIP_TIMEOUT_S

    run(test)


def test_bounded_wait_never_drops_to_zero() -> None:
    async def test() -> None:
        now = asyncio.get_running_loop().time()
        assert ledger.bounded_wait(0.5, None) == 0.5
        assert ledger.bounded_wait(0.5, now + 10) == 0.5
        assert 0 < ledger.bounded_wait(0.5, now - 1) <= 0.001

    run(test)


@pytest.mark.parametrize("node_id", ["node-1", 'quote"and\\slash', "nœud"])
def test_add_body_is_json_with_exact_numbers(node_id: str) -> None:
    async def test() -> list[dict[str, Any]]:
        adds = [make_add(n, f"k{i}") for i, n in enumerate(["0.1", "0.2", "-1e2", "1" + "0" * 29])]
        plan = ledger._plan(Decimal(0), adds, [None] * len(adds), node_id, ledger.AttemptResult())
        assert plan.total == Decimal("9" * 27 + "00.3")
        return [parse(body.encode()) for _, body in plan.applies]

    bodies = run(test)
    assert [b["new_sum"] for b in bodies] == [
        Decimal("0.1"),
        Decimal("0.3"),
        Decimal("-99.7"),
        Decimal("9" * 27 + "00.3"),
    ]
    assert [b["added"] for b in bodies] == [Decimal(n) for n in ["0.1", "0.2", "-100", "1e29"]]
    assert {b["node_id"] for b in bodies} == {node_id}


# ----- the key budget: a client's quota of new keyed records, the key store's memory ---------

C1 = "abacus:sum:quota:203.0.113.7"
C2 = "abacus:sum:quota:198.51.100.4"
BODY_OF_7 = '{"new_sum": 7, "added": 7, "timestamp": "t", "node_id": "n"}'


def new_sums(result: ledger.AttemptResult) -> dict[str, Decimal]:
    """The new_sum each applied add was answered with, by its record key."""
    return {
        add.record_key: parse(outcome.body.encode())["new_sum"]
        for add, outcome in result.resolved
        if isinstance(outcome, Committed)
    }


def test_a_client_past_its_quota_is_refused_at_once_and_the_rest_of_the_batch_commits() -> None:
    async def test() -> None:
        server = ScriptedRedis(data={b"abacus:sum": b"10", C1.encode(): b"4"})
        server.expiries[C1.encode()] = 30  # C1's window ends in 30 s
        first = keyed_add(1, "k1", quota(5, C1))
        over = keyed_add(2, "k2", quota(5, C1))
        keyless = make_add(4, "r1")
        other_client = keyed_add(8, "k3", quota(5, C2))
        result = await attempt(server, [first, over, keyless, other_client])
        outcomes = dict(result.resolved)
        refusal = outcomes[over]
        assert isinstance(refusal, ApiError)
        assert (refusal.status, refusal.code) == (429, "key_quota_exhausted")
        assert refusal.headers["Retry-After"] == "30", "until the client's window ends"
        # Not applied, not fenced: the refusal costs no memory and takes no place in the order.
        assert server.get("k2") is None
        assert over.exposure is Exposure.NOT_SENT
        assert not over.fencing
        assert new_sums(result) == {"k1": 11, "r1": 15, "k3": 23}
        assert server.get(SUM_KEY) == b"23"
        assert result.committed == 3
        # Counted in the same EXEC as the records they pay for. A window starts with a client's
        # first new key and lasts one record lifetime; later keys do not stretch it.
        assert server.get(C1) == b"5"
        assert server.get(C2) == b"1"
        assert server.expiries[C1.encode()] == 30
        assert server.expiries[C2.encode()] == 120

    run(test)


def test_the_counters_are_read_in_the_watch_round_trip_only_when_a_batch_needs_them() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        await attempt(server, [make_add(1, "r1"), keyed_add(2, "k0")])  # no quota: keyless, off
        assert server.sent == [["WATCH", "GET", "MGET"], ["MULTI", "SET", "SET", "SET", "EXEC"]]
        server.sent.clear()
        await attempt(server, [keyed_add(1, "k1", quota(5, C1)), keyed_add(2, "k2", quota(5, C2))])
        assert server.sent == [
            ["WATCH", "GET", "MGET", "MGET", "PTTL", "PTTL"],
            ["MULTI", "SET", "SET", "SET", "SET", "INCRBY", "SET", "INCRBY", "EXEC"],
        ], "no round trip more: the counters are read with the sum and written with it"

    run(test)


def test_adds_planned_in_the_same_batch_count_against_the_quota() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        adds = [keyed_add(n, f"k{n}", quota(2, C1)) for n in (1, 2, 4)]
        result = await attempt(server, adds)
        assert answers(result) == ["key_quota_exhausted", "200", "200"]
        assert dict(result.resolved)[adds[2]].code == "key_quota_exhausted"  # type: ignore[union-attr]
        assert server.get(SUM_KEY) == b"3"
        assert server.get(C1) == b"2"

    run(test)


def test_a_key_whose_record_exists_is_answered_from_it_past_the_quota_and_the_store_limit() -> None:
    async def test() -> None:
        server = ScriptedRedis(data={b"abacus:sum": b"7", C1.encode(): b"5"})
        server.data[b"replayed"] = records.committed("someone", BODY_OF_7).encode()
        server.data[b"reused"] = records.committed("someone", BODY_OF_7).encode()
        server.data[b"fenced"] = records.fence("someone", "9").encode()
        adds = [
            keyed_add(7, "replayed", quota(5, C1)),
            keyed_add(8, "reused", quota(5, C1)),
            keyed_add(9, "fenced", quota(5, C1)),
        ]
        for store_full in (False, True):
            result = await attempt(server, adds, store_full=store_full)
            assert answers(result) == [
                "200 replay",
                "idempotency_key_reused",
                "idempotency_key_refused",
            ]
        assert server.execs_sent == 0, "no new record: nothing written, nothing counted"
        assert server.get(C1) == b"5"

    run(test)


def test_a_fence_for_a_client_key_is_a_new_record_and_counts() -> None:
    async def test() -> None:
        server = ScriptedRedis(data={b"abacus:sum": b"9" * 30})
        shared = keyed_add("1" + "0" * 29, "k1", quota(5, C1))
        result = await attempt(server, [shared])
        assert answers(result) == ["sum_out_of_range"]
        assert records.read(server.get("k1") or b"").body is None, "fenced"
        assert server.get(C1) == b"1", "a fence takes memory like any record"

    run(test)


def test_an_add_owed_a_fence_past_its_quota_gets_the_quota_s_answer_and_no_fence() -> None:
    async def test() -> None:
        server = ScriptedRedis(data={C1.encode(): b"5"})
        late = keyed_add(5, "k1", quota(5, C1), deadline_in=-0.01)
        result = await attempt(server, [late])
        # Nothing of it was ever sent: "this request did not add" is true without a fence,
        # and a fence would be one more record past the quota.
        assert answers(result) == ["key_quota_exhausted"]
        assert server.execs_sent == 0
        assert server.get("k1") is None

    run(test)


def test_an_add_whose_exec_may_have_been_sent_is_never_refused_by_the_budget() -> None:
    async def test() -> None:
        server = ScriptedRedis(data={C1.encode(): b"5"})
        # A lost EXEC reply: the answer must say what became of it.
        resent = lose_exec(keyed_add(5, "k1", quota(5, C1)))
        result = await attempt(server, [resent], store_full=True)
        assert answers(result) == ["200"]
        assert server.get(C1) == b"6", "the one way past the quota, counted all the same"

    run(test)


def test_a_full_key_store_pauses_new_client_keys_only() -> None:
    async def test() -> None:
        server = ScriptedRedis(data={b"abacus:sum": b"7"})
        server.data[b"replayed"] = records.committed("someone", BODY_OF_7).encode()
        new_key = keyed_add(1, "k1", quota(5, C1))
        unlimited = keyed_add(2, "k2")  # ABACUS_KEYS_PER_CLIENT=0: the store still bounds it
        keyless = make_add(4, "r1")
        retried = make_add(8, "retry", others=Others.SAME_KEY)  # the balancer's retry key
        replay = keyed_add(7, "replayed", quota(5, C1))
        adds = [new_key, unlimited, keyless, retried, replay]
        result = await attempt(server, adds, store_full=True)
        outcomes = dict(result.resolved)
        for refused in (new_key, unlimited):
            refusal = outcomes[refused]
            assert isinstance(refusal, ApiError)
            assert (refusal.status, refusal.code) == (503, "key_store_full")
            assert int(refusal.headers["Retry-After"]) > 1
            assert "memory" in refusal.message
        assert answers(result) == [
            "key_store_full",
            "key_store_full",
            "200 replay",
            "200",
            "200",
        ]
        assert server.get("k1") is None, "no fence"
        assert server.get("k2") is None
        assert server.get(C1) is None
        assert server.get(SUM_KEY) == b"19"

    run(test)


def test_a_budget_refusal_stands_when_redis_refuses_the_rest_of_the_batch() -> None:
    async def test() -> None:
        oom = "OOM command not allowed when used memory > 'maxmemory'"
        server = ScriptedRedis(data={C1.encode(): b"1"})
        server.plan(["ok", error(oom)])
        over = keyed_add(1, "k1", quota(1, C1))
        sole = make_add(2, "r1")
        result = await attempt(server, [over, sole])
        assert dict(result.resolved)[over].code == "key_quota_exhausted"  # type: ignore[union-attr]
        assert "OOM" in str(dict(result.resolved)[sole]), "the rest: refused by Redis"
        assert answers(result) == ["key_quota_exhausted", "unavailable"]
        assert server.get(C1) == b"1"

    run(test)


def test_an_exec_that_met_a_conflict_leaves_the_add_as_unsent_as_before() -> None:
    """A nil EXEC reply is Redis discarding the whole transaction: it applied nothing, so it
    neither lets the add past the budget (as a lost EXEC would) nor calls for a fence."""

    async def test() -> None:
        server = ScriptedRedis(data={C1.encode(): b"4"})
        server.plan(["ok", CONFLICT])
        add = keyed_add(1, "k1", quota(5, C1))
        result = await attempt(server, [add])
        assert result.retry == [add]
        assert add.exposure is Exposure.NOT_SENT, "the reply came: nothing of it can commit"
        server.data[C1.encode()] = b"5"  # meanwhile another worker's add took the last one
        again = await attempt(server, [add])
        assert answers(again) == ["key_quota_exhausted"]
        assert server.get(SUM_KEY) == b"0", "only the other writer's (unchanged) sum"
        assert server.get("k1") is None

    run(test)


def test_after_a_conflict_an_earlier_lost_exec_still_counts_as_maybe_applied() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        server.plan(["ok", CONFLICT])
        # An earlier EXEC of it was lost: that one may yet be what counted.
        add = lose_exec(keyed_add(1, "k1", quota(5, C1)))
        await attempt(server, [add])
        assert add.exposure is Exposure.MAYBE_APPLIED

    run(test)


# ----- what each way an EXEC ends makes of the adds it carried -------------------------------


@pytest.mark.parametrize(
    ("fault", "raised"),
    [(LOST, RedisConnectionError), (STALL, RedisTimeoutError), (GARBLED, InvalidResponse)],
)
def test_an_exec_whose_reply_is_never_read_leaves_its_adds_maybe_applied(
    fault: str, raised: type[Exception]
) -> None:
    """However the attempt ends without the reply (connection, timer, an unreadable reply), the
    EXEC may have been applied: each add it carried says so, before the attempt raises."""

    async def test() -> None:
        server = ScriptedRedis()
        server.plan(["ok", fault])
        sole = make_add(1, "r1", deadline_in=0.2)
        shared = keyed_add(2, "k1", deadline_in=0.2)
        with pytest.raises(raised):
            await attempt(server, [sole, shared])
        assert [sole.exposure, shared.exposure] == [Exposure.MAYBE_APPLIED] * 2
        assert not sole.exec_in_flight

    run(test)


def test_an_error_reply_to_a_resent_exec_leaves_the_earlier_lost_one_to_be_resolved() -> None:
    async def test() -> None:
        oom = "OOM command not allowed when used memory > 'maxmemory'"
        server = ScriptedRedis()
        server.plan(["ok", error(oom)])
        add = lose_exec(make_add(1, "r1"))
        result = await attempt(server, [add])
        assert add.exposure is Exposure.MAYBE_APPLIED, "the error says nothing of the lost EXEC"
        assert result.resolved == []
        assert result.retry == [add], "back, to write a fence: the lost EXEC may still commit"
        assert add.fencing

    run(test)


def test_a_maybe_applied_add_whose_record_is_absent_is_applied_by_a_later_attempt() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        server.plan([DROPPED])  # the WATCH round trip: nothing applied
        add = lose_exec(make_add(3, "r1"))
        with pytest.raises(RedisConnectionError):
            await attempt(server, [add])
        after_the_drop = add.exposure  # nothing was sent this time
        result = await attempt(server, [add])
        assert answers(result) == ["200"]
        assert (after_the_drop, add.exposure) == (Exposure.MAYBE_APPLIED, Exposure.APPLIED)
        assert server.get(SUM_KEY) == b"3"

    run(test)


# --- Replication: the primary's refusals, and answers confirmed by replicas ---------------------

ONE_ACK = ReplicaAcks(1, "abacus:sum:ack:unit-node")
READONLY = "READONLY You can't write against a read only replica."
NOREPLICAS = "NOREPLICAS Not enough good replicas to write."


@pytest.mark.parametrize("refusal", [READONLY, NOREPLICAS])
def test_a_demoted_primary_or_one_short_of_replicas_applies_nothing_and_the_adds_go_back(
    refusal: str,
) -> None:
    """Not the add's fault: tried again (on the primary found again) until the deadline, rather
    than refused at once as other error replies are."""

    async def test() -> None:
        server = ScriptedRedis(data={b"abacus:sum": b"5"})
        server.plan(["ok", error(refusal)])
        sole = make_add(1, "sole")
        shared = keyed_add(2, "shared")
        earlier = lose_exec(make_add(3, "earlier"))
        result = await attempt(server, [sole, shared, earlier])
        assert result.resolved == []
        assert result.retry == [sole, shared, earlier]
        assert result.primary_refused
        assert not shared.fencing, "nothing to fence: no add is refused"
        assert sole.exposure is Exposure.NOT_SENT, "the refused EXEC applied nothing"
        assert earlier.exposure is Exposure.MAYBE_APPLIED, "its earlier EXEC is still unresolved"
        assert server.get(SUM_KEY) == b"5"

    run(test)


def test_with_acks_the_wait_rides_in_the_exec_s_round_trip_within_its_timer() -> None:
    async def test() -> None:
        server = ScriptedRedis(replicas_confirming=1)
        add = make_add(1, "r1")
        result = await attempt(server, [add], acks=ONE_ACK)
        assert answers(result) == ["200"]
        *_, last = server.sent
        assert last[-2:] == ["EXEC", "WAIT"]
        assert last.count("MULTI") == 1

    run(test)


def test_with_acks_a_commit_no_replica_confirmed_is_unknown_not_a_200() -> None:
    async def test() -> None:
        server = ScriptedRedis(replicas_confirming=0)
        add = make_add(1, "r1")
        shared = lose_exec(keyed_add(2, "shared"))
        assert shared.refuse(unavailable("out of time"), 0.0) is None, "it needs a fence"
        result = await attempt(server, [add, shared], acks=ReplicaAcks(2, "probe"))
        assert answers(result) == ["outcome_unknown", "outcome_unknown"], "the fence too"
        assert "replica" in str(dict(result.resolved)[add])
        assert add.exposure is Exposure.APPLIED, "the primary has it"
        assert server.get(SUM_KEY) == b"1"
        assert result.retry == []

    run(test)


def test_with_acks_an_answer_read_from_a_record_is_confirmed_by_a_write_then_a_wait() -> None:
    """A replay writes nothing, and WAIT covers only the connection's own writes: the probe key
    is written after the read, so the WAIT covers what the read saw."""

    async def test() -> None:
        server = ScriptedRedis(replicas_confirming=1)
        first = keyed_add(7, "abacus:sum:idem:k")
        assert answers(await attempt(server, [first], acks=ONE_ACK)) == ["200"]
        replay = keyed_add(7, "abacus:sum:idem:k")
        result = await attempt(server, [replay], acks=ONE_ACK)
        assert answers(result) == ["200 replay"]
        assert server.sent[-1] == ["UNWATCH", "SET", "WAIT"]
        assert server.get(ONE_ACK.probe_key) is not None
        server.replicas_confirming = 0
        again = await attempt(server, [keyed_add(7, "abacus:sum:idem:k")], acks=ONE_ACK)
        assert answers(again) == ["outcome_unknown"]

    run(test)


def test_with_acks_a_replay_beside_a_commit_is_confirmed_by_the_exec_s_wait() -> None:
    async def test() -> None:
        server = ScriptedRedis(replicas_confirming=1)
        assert answers(await attempt(server, [keyed_add(7, "k")], acks=ONE_ACK)) == ["200"]
        result = await attempt(server, [keyed_add(7, "k"), make_add(1, "r")], acks=ONE_ACK)
        assert sorted(answers(result)) == ["200", "200 replay"]
        assert server.sent[-1][-2:] == ["EXEC", "WAIT"]
        assert "UNWATCH" not in server.sent[-1]

    run(test)


def test_with_acks_a_conflict_sends_the_replays_back_with_the_batch() -> None:
    """A discarded EXEC wrote nothing, so its WAIT confirms nothing the attempt read."""

    async def test() -> None:
        server = ScriptedRedis(replicas_confirming=1)
        assert answers(await attempt(server, [keyed_add(7, "k")], acks=ONE_ACK)) == ["200"]
        replay, fresh = keyed_add(7, "k"), make_add(1, "r")
        server.plan(["ok", CONFLICT])
        result = await attempt(server, [replay, fresh], acks=ONE_ACK)
        assert result.resolved == []
        assert set(result.retry) == {replay, fresh}

    run(test)


def test_without_acks_nothing_waits_for_replicas() -> None:
    async def test() -> None:
        server = ScriptedRedis(replicas_confirming=0)
        assert answers(await attempt(server, [keyed_add(7, "k")])) == ["200"]
        assert answers(await attempt(server, [keyed_add(7, "k")])) == ["200 replay"]
        assert not any("WAIT" in names for names in server.sent)

    run(test)


def test_an_error_reply_to_the_wait_confirms_nothing_and_unapplies_nothing() -> None:
    """WAIT refused (its server demoted since the EXEC, an ACL): the EXEC still counted, so the
    answer is unknown, never "nothing changed"."""

    async def test() -> None:
        server = ScriptedRedis()
        refusal = ResponseError("ERR WAIT cannot be used with replica instances")
        server.replicas_confirming = refusal  # type: ignore[assignment]
        add = make_add(1, "r1")
        result = await attempt(server, [add], acks=ONE_ACK)
        assert answers(result) == ["outcome_unknown"]
        assert add.exposure is Exposure.APPLIED
        assert server.get(SUM_KEY) == b"1"

    run(test)
