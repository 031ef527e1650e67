"""The lanes' token: each attempt waits for it, each commit hands it on, a lost one comes back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from prometheus_client import REGISTRY

from abacus.node import ledger, records
from abacus.node.commit_turn import TURN_WAIT_S, Turn
from abacus.node.pending_add import Committed, PendingAdd
from tests.unit.commit_support import SUM_KEY, committer, make_add
from tests.unit.scripted_redis import CONFLICT, ScriptedConnection, ScriptedRedis

TURN = Turn(SUM_KEY + ":turn")
TOKEN_KEY = TURN.key.encode()


def with_token(**data: bytes) -> ScriptedRedis:
    server = ScriptedRedis(data={key.encode(): value for key, value in data.items()})
    server.lists[TOKEN_KEY] = [b"1"]
    return server


async def attempt(server: ScriptedRedis, adds: Sequence[PendingAdd]) -> ledger.AttemptResult:
    connection: Any = ScriptedConnection(server)
    return await ledger.attempt(connection, SUM_KEY, "unit-node", adds, turn=TURN)


def timeouts() -> float:
    return REGISTRY.get_sample_value("abacus_commit_turn_timeouts_total") or 0.0


def test_the_wait_for_the_turn_leads_round_trip_one_and_the_commit_hands_it_on() -> None:
    async def test() -> None:
        server = with_token()
        result = await attempt(server, [make_add(2, "r1")])
        assert result.committed == 1
        first, second = server.sent
        assert first == ["BLPOP", "WATCH", "GET", "MGET"], "no round trip added"
        assert second[-3:] == ["DEL", "RPUSH", "EXEC"], "handed on inside the transaction"
        assert server.lists[TOKEN_KEY] == [b"1"], "exactly one token for the next lane"

    asyncio.run(test())


def test_the_wait_is_bounded_and_never_forever() -> None:
    assert TURN.take(10.0) == ("BLPOP", TURN.key, f"{TURN_WAIT_S:.3f}")
    assert TURN.take(0.01) == ("BLPOP", TURN.key, "0.005"), "half the round trip's budget"
    assert TURN.take(0.0)[2] == "0.001", "0 would be forever to Redis"


def test_a_lost_token_comes_back_with_the_next_commit() -> None:
    async def test() -> None:
        server = ScriptedRedis()  # nobody holds the token: a node died with it
        before = timeouts()
        result = await attempt(server, [make_add(5, "r1")])
        assert result.committed == 1, "the lane went on without the turn"
        assert timeouts() == before + 1
        assert server.lists[TOKEN_KEY] == [b"1"]

    asyncio.run(test())


def test_two_tokens_become_one_at_the_next_commit() -> None:
    async def test() -> None:
        server = with_token()
        server.lists[TOKEN_KEY].append(b"1")
        await attempt(server, [make_add(1, "r1")])
        assert server.lists[TOKEN_KEY] == [b"1"]

    asyncio.run(test())


def test_a_lane_that_lost_a_conflict_does_not_add_a_token() -> None:
    """The winner's commit wrote a fresh token: the loser's own is gone with its EXEC."""

    async def test() -> None:
        server = with_token()
        server.plan(["ok", CONFLICT])
        result = await attempt(server, [make_add(1, "r1")])
        assert result.retry
        assert server.lists.get(TOKEN_KEY, []) == []

    asyncio.run(test())


def test_an_attempt_that_writes_nothing_hands_the_token_on_only_if_it_had_it() -> None:
    async def test() -> None:
        replay = make_add(1, "r1")
        record = records.committed(replay.commit_id, '{"new_sum": 1, "added": 1}')
        server = with_token(r1=record.encode())
        result = await attempt(server, [replay])
        assert isinstance(result.resolved[0][1], Committed)
        assert server.sent[-1] == ["UNWATCH", "DEL", "RPUSH"]
        assert server.lists[TOKEN_KEY] == [b"1"]

        again = make_add(1, "r1")
        server.lists.pop(TOKEN_KEY)
        await attempt(server, [again])
        assert server.sent[-1] == ["UNWATCH"], "no token made while another lane may hold it"

    asyncio.run(test())


def test_group_commit_takes_turns_and_one_transaction_per_request_does_not() -> None:
    async def test() -> None:
        for max_batch, expected in ((256, True), (1, False)):
            server = with_token()
            owner = committer(server, max_batch=max_batch)
            add = owner.submit(Decimal(1), None, 60)
            await add.future
            await owner.close()
            assert ("BLPOP" in server.sent[0]) is expected, max_batch

    asyncio.run(test())
