"""One optimistic transaction over the sum: WATCH / GET / MULTI / SET / EXEC for a batch of adds.

Every attempt is safe to repeat. It reads the commit record of each add it carries under the same
WATCH as the sum, so an add whose earlier EXEC did reach Redis (the reply was lost) is recognised
and never applied twice. The sum is always written, even when the batch adds 0: that write makes
any older, still-unanswered EXEC of the same add fail its WATCH.

An add this attempt will not apply (past its deadline, or out of range) is answered at once when
nothing else can carry it; otherwise the transaction writes a fence record under its key in
place of the add (`pending_add` decides which; `records` has the format).

The commands go over one connection (the commit lane's), in two round trips, so that it is plain
when an EXEC has been sent; redis-py's pipeline reports a failed EXEC as a WatchError, the same
as a conflict. The pool's connections have no per-command timeout: each round trip is bounded as
a whole (`ROUNDTRIP_TIMEOUT_S`), which costs one timer instead of one per reply.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app import amounts, records, resp
from app.errors import ApiError, out_of_time, unavailable
from app.pending_add import Committed, Outcome, PendingAdd
from app.redis_pool import SOCKET_TIMEOUT_S

ROUNDTRIP_TIMEOUT_S = SOCKET_TIMEOUT_S


@dataclass
class AttemptResult:
    resolved: list[tuple[PendingAdd, Outcome]] = field(default_factory=list)
    # Adds that must be tried again: the EXEC met a conflict, or Redis refused it while an
    # earlier EXEC of the same add may still have counted.
    retry: list[PendingAdd] = field(default_factory=list)
    # Adds applied by this transaction (0 unless it committed).
    committed: int = 0


@dataclass
class _Plan:
    total: Decimal
    # (add, its response body): applied if the EXEC commits.
    applies: list[tuple[PendingAdd, str]] = field(default_factory=list)
    # Refused adds whose fence record this EXEC writes.
    fences: list[PendingAdd] = field(default_factory=list)


def timestamp() -> str:
    return datetime.now(UTC).isoformat()


async def attempt(
    connection: Connection,
    sum_key: str,
    node_id: str,
    adds: Sequence[PendingAdd],
) -> AttemptResult:
    """Try once to commit `adds` (distinct record keys) in one transaction over `connection`.

    Each round trip waits at most ROUNDTRIP_TIMEOUT_S, and never past the moment an add must be
    decided (reading) or answered (waiting for an EXEC's reply), so that every add is answered by
    its deadline plus the resolve grace whatever Redis does.

    Raises redis' ConnectionError / TimeoutError when Redis cannot be reached; then `maybe_sent`
    tells which adds may have been applied. An error reply (out of memory, read-only replica, ...)
    applies nothing. Whenever the attempt does not end cleanly the connection is closed (replies
    may still be on their way); redis-py opens it again on the next use.
    """
    result = AttemptResult()
    ambiguous_before = {add.commit_id for add in adds if add.maybe_sent}
    clean = False
    try:
        read_by = min(add.decide_by for add in adds)
        total, found = await _watch_and_read(connection, sum_key, adds, read_by)
        # The deadline is checked here, after the WATCH reply and right before the EXEC is
        # written (nothing below yields to the event loop until the write).
        plan = _plan(total, adds, found, node_id, result)
        if plan.applies or plan.fences:
            await _execute(connection, sum_key, plan, result, min(a.answer_by for a in adds))
        else:
            await _roundtrip(connection, [("UNWATCH",)], read_by)
        clean = True
        return result
    except ResponseError as exc:
        _refused(exc, adds, ambiguous_before, result)
        return result
    finally:
        if not clean:
            await connection.disconnect()


async def _roundtrip(
    connection: Connection, commands: list[resp.Command], wait_until: float | None
) -> list[Any]:
    """Send `commands` in one write and read every reply; an error reply raises ResponseError."""
    limit = bounded_wait(ROUNDTRIP_TIMEOUT_S, wait_until)
    try:
        async with asyncio.timeout(limit):
            await connection.send_packed_command(resp.pack(commands), check_health=False)
            # inf: no timer per reply (the block has one); redis-py's None would mean its own.
            return [await connection.read_response(timeout=math.inf) for _ in commands]
    except TimeoutError:
        raise RedisTimeoutError(f"no reply from Redis within {limit:.3f} s") from None


def bounded_wait(longest: float, wait_until: float | None) -> float:
    """`longest`, or less so as to end by `wait_until` (loop time); never zero, so that a wait
    that is due at once still fails as a timeout rather than not starting."""
    if wait_until is None:
        return longest
    return max(0.001, min(longest, wait_until - asyncio.get_running_loop().time()))


async def _watch_and_read(
    connection: Connection,
    sum_key: str,
    adds: Sequence[PendingAdd],
    wait_until: float | None,
) -> tuple[Decimal, list[bytes | None]]:
    keys = [add.record_key for add in adds]
    _, raw_sum, found = await _roundtrip(
        connection, [("WATCH", sum_key), ("GET", sum_key), ("MGET", *keys)], wait_until
    )
    return amounts.parse_stored(raw_sum), found


def _plan(
    total: Decimal,
    adds: Sequence[PendingAdd],
    found: list[bytes | None],
    node_id: str,
    result: AttemptResult,
) -> _Plan:
    """Resolve the adds already decided, refuse those out of time or out of range (fencing them
    where needed); the rest get their running total and response body."""
    now = asyncio.get_running_loop().time()
    stamp_and_node = f'"timestamp": "{timestamp()}", "node_id": {json.dumps(node_id)}}}'
    plan = _Plan(total)
    for add, record in zip(adds, found, strict=True):
        if record is not None:
            result.resolved.append((add, add.outcome_of_record(record)))
            continue
        if not add.fencing:
            if now >= add.deadline:
                refusal = out_of_time()
            else:
                try:
                    plan.total = amounts.add(plan.total, add.number)
                except amounts.OutOfBounds:
                    refusal = _out_of_range()
                else:
                    # The response body, as json_body.encode would write it, built directly:
                    # this runs for every add of every attempt.
                    body = (
                        f'{{"new_sum": {amounts.render(plan.total)}, "added": {add.added}, '
                        f"{stamp_and_node}"
                    )
                    plan.applies.append((add, body))
                    continue
            answer = add.refuse(refusal, now)
            if answer is not None:
                result.resolved.append((add, answer))
                continue
        plan.fences.append(add)
    return plan


async def _execute(
    connection: Connection,
    sum_key: str,
    plan: _Plan,
    result: AttemptResult,
    wait_until: float | None,
) -> None:
    # The sum is written even when it does not change: every pending EXEC that read it fails.
    commands: list[resp.Command] = [("MULTI",), ("SET", sum_key, amounts.render(plan.total))]
    for add, body in plan.applies:
        value = records.committed(add.commit_id, body)
        commands.append(("SET", add.record_key, value, "EX", add.record_ttl_s))
        add.maybe_sent = True
    for add in plan.fences:
        value = records.fence(add.commit_id, add.added)
        commands.append(("SET", add.record_key, value, "EX", add.record_ttl_s))
        add.maybe_sent = True
    commands.append(("EXEC",))
    replies = (await _roundtrip(connection, commands, wait_until))[-1]
    if replies is None:
        # maybe_sent stays as it is: an earlier lost EXEC of these adds may be what conflicted.
        result.retry = [add for add, _ in plan.applies] + plan.fences
        return
    result.resolved += [(add, Committed(body, replayed=False)) for add, body in plan.applies]
    for add in plan.fences:
        assert add.refusal is not None
        result.resolved.append((add, add.refusal))
    result.committed = len(plan.applies)


def _refused(
    exc: ResponseError,
    adds: Sequence[PendingAdd],
    ambiguous_before: set[str],
    result: AttemptResult,
) -> None:
    """Redis answered with an error: nothing of this attempt was applied, and a fence would be
    refused the same way."""
    reason = f"Redis refused the write ({exc})"
    now = asyncio.get_running_loop().time()
    done = {add.commit_id for add, _ in result.resolved}
    for add in adds:
        if add.commit_id in done:
            continue
        # Still ambiguous only if an earlier EXEC of it was lost: keep resolving that one.
        add.maybe_sent = add.commit_id in ambiguous_before
        if add.fencing:
            result.resolved.append((add, add.fence_not_written(reason)))
            continue
        answer = add.refuse(unavailable(f"{reason}; nothing was changed"), now)
        if answer is not None:
            result.resolved.append((add, answer))
        else:
            result.retry.append(add)


def _out_of_range() -> ApiError:
    return ApiError(
        422,
        "sum_out_of_range",
        "this add would take the sum out of bounds (absolute value below 10^30, at most 18 "
        "digits after the decimal point); nothing was changed",
    )
