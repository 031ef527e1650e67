"""One optimistic transaction, fed a scripted Redis: what it writes and what it answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app import ledger, records
from app.json_body import parse
from app.pending_add import Committed, Others, PendingAdd
from app.settings import RESOLVE_GRACE_S
from tests.unit.commit_support import SUM_KEY, make_add
from tests.unit.scripted_redis import (
    CONFLICT,
    DROPPED,
    LOST,
    STALL,
    ScriptedConnection,
    ScriptedRedis,
    error,
)

T = TypeVar("T")


def run(test: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(test())


async def attempt(server: ScriptedRedis, adds: Sequence[PendingAdd]) -> ledger.AttemptResult:
    connection: Any = ScriptedConnection(server)
    return await ledger.attempt(connection, SUM_KEY, "unit-node", adds)


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
        assert all(add.maybe_sent for add in adds)

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

    run(test)


def test_a_lost_exec_reply_raises_and_leaves_the_add_maybe_sent() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        server.plan(["ok", LOST])
        add = make_add(4, "r1")
        with pytest.raises(RedisConnectionError):
            await attempt(server, [add])
        assert add.maybe_sent, "the EXEC went out: it may have counted"
        assert server.get(SUM_KEY) == b"4", "and here it did"

    run(test)


def test_a_connection_dropped_before_the_watch_sends_no_exec() -> None:
    async def test() -> None:
        server = ScriptedRedis()
        server.plan([DROPPED])
        add = make_add(4, "r1")
        with pytest.raises(RedisConnectionError):
            await attempt(server, [add])
        assert not add.maybe_sent
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
def test_out_of_time_a_shared_or_maybe_sent_add_is_fenced_before_it_is_refused(
    others: Others,
) -> None:
    async def test() -> None:
        server = ScriptedRedis(data={b"abacus:sum": b"3"})
        add = make_add(5, "r1", others=others, deadline_in=-0.01)
        add.maybe_sent = others is Others.NONE  # a sole add needs a fence only after an EXEC
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
