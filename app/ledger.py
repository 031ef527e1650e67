"""One optimistic transaction over the sum: WATCH / GET / MULTI / SET / EXEC for a batch of adds.

Every attempt is safe to repeat. It reads the commit record of each add it carries under the same
WATCH as the sum, so an add whose earlier EXEC did reach Redis (the reply was lost) is recognised
and never applied twice. The sum is always written, even when the batch adds 0: that write is the
fence that makes any older, still-unanswered EXEC of the same add fail its WATCH.

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

from app import amounts, resp
from app.errors import ApiError, unavailable
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


def timestamp() -> str:
    return datetime.now(UTC).isoformat()


async def attempt(
    connection: Connection, sum_key: str, node_id: str, adds: Sequence[PendingAdd]
) -> AttemptResult:
    """Try once to commit `adds` (distinct record keys) in one transaction over `connection`.

    Raises redis' ConnectionError / TimeoutError when Redis cannot be reached; then `maybe_sent`
    tells which adds may have been applied. An error reply (out of memory, read-only replica, ...)
    applies nothing and is answered as `unavailable`. Whenever the attempt does not end cleanly
    the connection is closed (replies may still be on their way); redis-py opens it again on the
    next use.
    """
    result = AttemptResult()
    ambiguous_before = {add.commit_id for add in adds if add.maybe_sent}
    clean = False
    try:
        total, records = await _watch_and_read(connection, sum_key, adds)
        writes, total = _plan(total, adds, records, node_id, result)
        if writes:
            await _execute(connection, sum_key, total, writes, result)
        else:
            await _roundtrip(connection, [("UNWATCH",)])
        clean = True
        return result
    except ResponseError as exc:
        _refuse(exc, adds, ambiguous_before, result)
        return result
    finally:
        if not clean:
            await connection.disconnect()


async def _roundtrip(connection: Connection, commands: list[resp.Command]) -> list[Any]:
    """Send `commands` in one write and read every reply; an error reply raises ResponseError."""
    try:
        async with asyncio.timeout(ROUNDTRIP_TIMEOUT_S):
            await connection.send_packed_command(resp.pack(commands), check_health=False)
            # inf: no timer per reply (the block has one); redis-py's None would mean its own.
            return [await connection.read_response(timeout=math.inf) for _ in commands]
    except TimeoutError:
        raise RedisTimeoutError(f"no reply from Redis within {ROUNDTRIP_TIMEOUT_S} s") from None


async def _watch_and_read(
    connection: Connection, sum_key: str, adds: Sequence[PendingAdd]
) -> tuple[Decimal, list[bytes | None]]:
    keys = [add.record_key for add in adds]
    _, raw_sum, records = await _roundtrip(
        connection, [("WATCH", sum_key), ("GET", sum_key), ("MGET", *keys)]
    )
    return amounts.parse_stored(raw_sum), records


def _plan(
    total: Decimal,
    adds: Sequence[PendingAdd],
    records: list[bytes | None],
    node_id: str,
    result: AttemptResult,
) -> tuple[list[tuple[PendingAdd, str]], Decimal]:
    """Resolve the adds already decided; the rest get their running total and response body."""
    stamp_and_node = f'"timestamp": "{timestamp()}", "node_id": {json.dumps(node_id)}}}'
    writes: list[tuple[PendingAdd, str]] = []
    for add, record in zip(adds, records, strict=True):
        if record is not None:
            result.resolved.append((add, add.outcome_of_record(record)))
            continue
        try:
            total = amounts.add(total, add.number)
        except amounts.OutOfBounds:
            result.resolved.append((add, _out_of_range()))
            continue
        # The response body, as json_body.encode would write it, built directly: this runs for
        # every add of every attempt.
        body = f'{{"new_sum": {amounts.render(total)}, "added": {add.added}, {stamp_and_node}'
        writes.append((add, body))
    return writes, total


async def _execute(
    connection: Connection,
    sum_key: str,
    total: Decimal,
    writes: list[tuple[PendingAdd, str]],
    result: AttemptResult,
) -> None:
    commands: list[resp.Command] = [("MULTI",), ("SET", sum_key, amounts.render(total))]
    commands += [
        ("SET", add.record_key, add.record_value(body), "EX", add.record_ttl_s)
        for add, body in writes
    ]
    commands.append(("EXEC",))
    for add, _ in writes:
        add.maybe_sent = True
    replies = (await _roundtrip(connection, commands))[-1]
    if replies is None:
        # maybe_sent stays as it is: an earlier lost EXEC of these adds may be what conflicted.
        result.retry = [add for add, _ in writes]
    else:
        result.resolved += [(add, Committed(body, replayed=False)) for add, body in writes]
        result.committed = len(writes)


def _refuse(
    exc: ResponseError,
    adds: Sequence[PendingAdd],
    ambiguous_before: set[str],
    result: AttemptResult,
) -> None:
    """Redis answered with an error: nothing of this attempt was applied."""
    refused = unavailable(f"Redis refused the write ({exc}); nothing was changed")
    done = {add.commit_id for add, _ in result.resolved}
    for add in adds:
        if add.commit_id in done:
            continue
        # Still ambiguous only if an earlier EXEC of it was lost: keep resolving that one.
        add.maybe_sent = add.commit_id in ambiguous_before
        if add.maybe_sent:
            result.retry.append(add)
        else:
            result.resolved.append((add, refused))


def _out_of_range() -> ApiError:
    return ApiError(
        422,
        "sum_out_of_range",
        "this add would take the sum out of bounds (absolute value below 10^30, at most 18 "
        "digits after the decimal point); nothing was changed",
    )
