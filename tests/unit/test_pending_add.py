"""An add's decisions: when "nothing changed" may be said, when a fence must come first."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from prometheus_client import REGISTRY

from abacus.node import records
from abacus.node.errors import unavailable
from abacus.node.pending_add import Committed, Others, Outcome, new_commit_id
from abacus.node.settings import RESOLVE_GRACE_S
from tests.unit.commit_support import make_add

T = TypeVar("T")
REFUSAL = unavailable("test refusal; nothing changed")


def run(test: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(test())


def code(outcome: Outcome | None) -> str | None:
    if outcome is None:
        return None
    return "200" if isinstance(outcome, Committed) else outcome.code


@pytest.mark.parametrize(
    ("others", "maybe_sent", "expected"),
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
def test_refuse(others: Others, maybe_sent: bool, expected: str | None) -> None:
    async def test() -> None:
        add = make_add(1, others=others)
        add.maybe_sent = maybe_sent
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
        add.unreachable_since = now - 1.0
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
