"""One optimistic transaction over the sum: WATCH / GET / MULTI / SET / EXEC for a batch of adds.

Every attempt is safe to repeat. It reads the commit record of each add it carries under the same
WATCH as the sum, so an add whose earlier EXEC did reach Redis (the reply was lost) is recognised
and never applied twice. The sum is always written, even when the batch adds 0: that write makes
any older, still-unanswered EXEC of the same add fail its WATCH.

An add this attempt will not apply (past its deadline, or out of range) is answered at once when
nothing else can carry it; otherwise the transaction writes a fence record under its key in
place of the add (`pending_add` decides which; `records` has the format).

The key budget is decided here too, from what the same round trip read: a client-keyed add that
would make a new record is answered at once (no record, no fence) when its client's quota counter
(`key_quota`) plus the batch's earlier new records reaches the quota, or when the key store is
nearly full (`memory_watch`, passed in as `store_full`); the counters of the records the EXEC
writes (applies and fences alike) are counted in the same EXEC. Replays, keyless adds and the
balancer's retry keys are never refused by it.

The commands go over one connection (the commit lane's), in two round trips, so that it is plain
when an EXEC has been sent; redis-py's pipeline reports a failed EXEC as a WatchError, the same
as a conflict. The pool's connections have no per-command timeout: each round trip is bounded as
a whole (`ROUNDTRIP_TIMEOUT_S`), which costs one timer instead of one per reply.

Each add is told of every EXEC that carries it and of how that EXEC ended (`PendingAdd.exec_sent`
and the four endings): all `pending_add` needs to know of what Redis may hold of it.

Two refusals are not the add's fault but the primary's: READONLY (the server was demoted: a
failover) and NOREPLICAS (too few replicas for `min-replicas-to-write`, e.g. right after a
failover). Nothing was applied; the adds are tried again, on the primary found again, until their
deadline (`AttemptResult.primary_refused`).

With `acks` (ABACUS_MIN_REPLICA_ACKS > 0), an answer that reports Redis's state (a commit, a
fence, anything read from a record) is given only once WAIT / WAITAOF says that many replicas
have it (replica_acks.py); the WAIT rides in the same round trip as the EXEC, or, when nothing is
written, after a write of the node's probe key. When it falls short the answer is
`outcome_unknown`.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from redis.asyncio.connection import Connection
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from abacus.node import amounts, metrics, records, resp
from abacus.node.commit_turn import Turn
from abacus.node.errors import (
    ApiError,
    key_store_full,
    out_of_time,
    sum_out_of_range,
    unavailable,
)
from abacus.node.key_quota import Quota
from abacus.node.pending_add import Committed, Outcome, PendingAdd
from abacus.node.redis_pool import SOCKET_TIMEOUT_S
from abacus.node.replica_acks import ReplicaAcks
from abacus.node.timestamps import timestamp

ROUNDTRIP_TIMEOUT_S = SOCKET_TIMEOUT_S


@dataclass
class AttemptResult:
    resolved: list[tuple[PendingAdd, Outcome]] = field(default_factory=list)
    # Adds that must be tried again: the EXEC met a conflict, or Redis refused it while an
    # earlier EXEC of the same add may still have counted.
    retry: list[PendingAdd] = field(default_factory=list)
    # Adds applied by this transaction (0 unless it committed).
    committed: int = 0
    # Redis refused the attempt because the primary was demoted or lost its replicas (READONLY,
    # NOREPLICAS): `retry` holds every add it did not answer, for the primary found again.
    primary_refused: bool = False


@dataclass
class _Plan:
    total: Decimal
    # (add, its response body): applied if the EXEC commits.
    applies: list[tuple[PendingAdd, str]] = field(default_factory=list)
    # Refused adds whose fence record this EXEC writes.
    fences: list[PendingAdd] = field(default_factory=list)
    # New client-keyed records this EXEC writes, by the quota they count against.
    charges: dict[Quota, int] = field(default_factory=dict)
    # What the records read under the WATCH said of adds already decided (replays, a lost EXEC
    # found committed, fences): answers that report Redis's state, as does a commit.
    reported: list[tuple[PendingAdd, Outcome]] = field(default_factory=list)


@dataclass
class _Counters:
    """The quota counters of a batch's clients, as read under the WATCH."""

    # Records counted so far in each client's window; the plan adds the ones it will write.
    counted: dict[str, int] = field(default_factory=dict)
    # Milliseconds left in each window (Redis's PTTL), for the 429's Retry-After.
    window_left_ms: dict[str, int] = field(default_factory=dict)


async def attempt(
    connection: Connection,
    sum_key: str,
    node_id: str,
    adds: Sequence[PendingAdd],
    *,
    store_full: bool = False,
    acks: ReplicaAcks | None = None,
    turn: Turn | None = None,
) -> AttemptResult:
    """Try once to commit `adds` (distinct record keys) in one transaction over `connection`;
    `store_full`: the key store's memory budget pauses new client keys; `acks`: how many replicas
    must confirm what an answer reports (None: none); `turn`: wait for the lanes' token first,
    and hand it on (commit_turn.py).

    Each round trip waits at most ROUNDTRIP_TIMEOUT_S, and never past the moment an add must be
    decided (reading) or answered (waiting for an EXEC's reply), so that every add is answered by
    its deadline plus the resolve grace whatever Redis does.

    Every EXEC it sends is reported to the adds it carries (`PendingAdd.exec_sent`) and so is
    how it ended, before this returns or raises: applied, discarded (a conflict), refused (an
    error reply: out of memory, read-only replica, ...; nothing applied) or, on any other way
    out, its reply lost. Raises redis' ConnectionError / TimeoutError when Redis cannot be
    reached; then the adds' `exposure` tells which may have been applied. Whenever the attempt
    does not end cleanly the connection is closed (replies may still be on their way); redis-py
    opens it again on the next use.
    """
    result = AttemptResult()
    clean = False
    try:
        read_by = min(add.decide_by for add in adds)
        total, found, counters, held = await _watch_and_read(
            connection, sum_key, adds, read_by, turn
        )
        # The token goes on to the next lane with this attempt's last write; when the attempt
        # waited in vain, a commit of its own still writes a fresh one (a lost token comes back).
        hand_on = turn.hand_on() if turn is not None else []
        # The deadline is checked here, after the WATCH reply and right before the EXEC is
        # written (nothing below yields to the event loop until the write).
        plan = _plan(total, adds, found, node_id, result, counters=counters, store_full=store_full)
        if acks is None:
            result.resolved += plan.reported
        answer_by = min(a.answer_by for a in adds)
        if plan.applies or plan.fences:
            await _execute(connection, sum_key, plan, result, answer_by, acks=acks, turn=hand_on)
        else:
            if not held:
                hand_on = []
            if acks is not None and plan.reported:
                await _confirm_reported(connection, plan, result, answer_by, acks, turn=hand_on)
            else:
                limit = bounded_wait(ROUNDTRIP_TIMEOUT_S, read_by)
                await _roundtrip(connection, [("UNWATCH",), *hand_on], limit)
        clean = True
        return result
    except ResponseError as exc:
        _refused(exc, adds, result)
        return result
    finally:
        if not clean:
            # The connection failed, a wait ran out, or a bug: an EXEC sent and not answered may
            # have been applied (or may yet be). Its reply will never be read on this connection.
            for add in adds:
                if add.exec_in_flight:
                    add.exec_reply_lost()
            await connection.disconnect()


async def _roundtrip(
    connection: Connection,
    commands: list[resp.Command],
    limit: float,
    *,
    ack: resp.Command | None = None,
) -> list[Any]:
    """Send `commands` in one write and read every reply within `limit` seconds; an error reply
    raises ResponseError. `ack` (a WAIT) goes last, and its reply is the last of the list, an
    error reply included as a value: it says nothing of the commands before it (an EXEC applied
    stays applied), so it must not be taken for their refusal."""
    sent = [*commands, ack] if ack is not None else commands
    try:
        async with asyncio.timeout(limit):
            await connection.send_packed_command(resp.pack(sent), check_health=False)
            # inf: no timer per reply (the block has one); redis-py's None would mean its own.
            replies = [await connection.read_response(timeout=math.inf) for _ in commands]
            if ack is not None:
                try:
                    replies.append(await connection.read_response(timeout=math.inf))
                except ResponseError as exc:
                    replies.append(exc)
            return replies
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
    turn: Turn | None = None,
) -> tuple[Decimal, list[bytes | None], _Counters, bool]:
    """The sum, the adds' records and their clients' counters, read under the WATCH; and whether
    the lanes' token was taken first (False without `turn`)."""
    keys = [add.record_key for add in adds]
    limit = bounded_wait(ROUNDTRIP_TIMEOUT_S, wait_until)
    commands: list[resp.Command] = [("WATCH", sum_key), ("GET", sum_key), ("MGET", *keys)]
    if turn is not None:
        commands.insert(0, turn.take(limit))
    # The counters of the batch's clients, in the same round trip: no quota costs a round trip.
    # Not watched: every transaction that counts into them also writes the watched sum.
    quota_keys = list(dict.fromkeys(a.quota.counter_key for a in adds if a.quota is not None))
    if quota_keys:
        commands.append(("MGET", *quota_keys))
        commands += [("PTTL", key) for key in quota_keys]
    replies = await _roundtrip(connection, commands, limit)
    held = False
    if turn is not None:
        taken, *replies = replies
        held = taken is not None
        if not held:
            metrics.TURN_TIMEOUTS.inc()
    _, raw_sum, found, *quota_replies = replies
    counters = _Counters()
    if quota_keys:
        counts, *windows = quota_replies
        for key, count, window_left_ms in zip(quota_keys, counts, windows, strict=True):
            counters.counted[key] = int(count or 0)
            counters.window_left_ms[key] = int(window_left_ms)
    return amounts.parse_stored(raw_sum), found, counters, held


def _plan(
    total: Decimal,
    adds: Sequence[PendingAdd],
    found: list[bytes | None],
    node_id: str,
    result: AttemptResult,
    *,
    counters: _Counters | None = None,
    store_full: bool = False,
) -> _Plan:
    """Resolve the adds already decided, refuse those the key budget will not take or that are
    out of time or out of range (fencing them where needed); the rest get their running total and
    response body."""
    now = asyncio.get_running_loop().time()
    stamp_and_node = f'"timestamp": "{timestamp()}", "node_id": {json.dumps(node_id)}}}'
    plan = _Plan(total)
    counters = counters or _Counters()
    for add, record in zip(adds, found, strict=True):
        if record is not None:
            plan.reported.append((add, add.outcome_of_record(record)))
            continue
        over_budget = _over_budget(add, counters, store_full)
        if over_budget is not None:
            answer = add.refuse_for_budget(over_budget)
            if answer is not None:
                result.resolved.append((add, answer))
                continue
        if not add.fencing:
            if now >= add.deadline:
                refusal = out_of_time()
            else:
                try:
                    plan.total = amounts.add(plan.total, add.number)
                except amounts.OutOfBounds:
                    refusal = sum_out_of_range()
                else:
                    # The response body, as json_body.encode would write it, built directly:
                    # this runs for every add of every attempt.
                    body = (
                        f'{{"new_sum": {amounts.render(plan.total)}, "added": {add.added}, '
                        f"{stamp_and_node}"
                    )
                    plan.applies.append((add, body))
                    _charge(plan, add, counters)
                    continue
            answer = add.refuse(refusal, now)
            if answer is not None:
                result.resolved.append((add, answer))
                continue
        plan.fences.append(add)
        _charge(plan, add, counters)
    return plan


def _over_budget(add: PendingAdd, counters: _Counters, store_full: bool) -> ApiError | None:
    """Why the key budget will not take this add's new record, if it will not. Only a client's
    keys are bounded: the balancer's retry keys and keyless adds' records live minutes, bounded
    by throughput, and must keep working while keys are paused."""
    if not add.client_key:
        return None
    quota = add.quota
    if quota is not None and counters.counted[quota.counter_key] >= quota.limit:
        return quota.exhausted(counters.window_left_ms[quota.counter_key])
    if store_full:
        return key_store_full()
    return None


def _charge(plan: _Plan, add: PendingAdd, counters: _Counters) -> None:
    """Count a new client-keyed record this EXEC writes (a fence is a record too)."""
    if add.quota is not None:
        counters.counted[add.quota.counter_key] += 1
        plan.charges[add.quota] = plan.charges.get(add.quota, 0) + 1


async def _execute(
    connection: Connection,
    sum_key: str,
    plan: _Plan,
    result: AttemptResult,
    wait_until: float | None,
    *,
    acks: ReplicaAcks | None,
    turn: list[resp.Command],
) -> None:
    # The sum is written even when it does not change: every pending EXEC that read it fails.
    commands: list[resp.Command] = [("MULTI",), ("SET", sum_key, amounts.render(plan.total))]
    for add, body in plan.applies:
        value = records.committed(add.commit_id, body)
        commands.append(("SET", add.record_key, value, "EX", add.record_ttl_s))
    for add in plan.fences:
        value = records.fence(add.commit_id, add.added)
        commands.append(("SET", add.record_key, value, "EX", add.record_ttl_s))
    for quota, count in plan.charges.items():
        # A client's window starts with its first new record and lasts one record lifetime:
        # made with that TTL when absent (NX), never stretched by later records.
        commands.append(("SET", quota.counter_key, 0, "EX", quota.window_s, "NX"))
        commands.append(("INCRBY", quota.counter_key, count))
    commands += turn
    commands.append(("EXEC",))
    carried = [add for add, _ in plan.applies] + plan.fences
    limit = bounded_wait(ROUNDTRIP_TIMEOUT_S, wait_until)
    ack = acks.command(connection, limit) if acks is not None else None
    # Reported before the write: from here on the EXEC may reach Redis whatever happens next.
    for add in carried:
        add.exec_sent()
    replies = await _roundtrip(connection, commands, limit, ack=ack)
    exec_reply = replies[len(commands) - 1]
    if exec_reply is None:
        for add in carried:
            add.exec_discarded()
        result.retry = carried
        if acks is not None:
            # Nothing was written, so the WAIT covers nothing read: they are read again.
            result.retry += [add for add, _ in plan.reported]
        return
    for add in carried:
        add.exec_applied()
    outcomes: list[tuple[PendingAdd, Outcome]] = [
        (add, Committed(body, replayed=False)) for add, body in plan.applies
    ]
    for add in plan.fences:
        assert add.refusal is not None
        outcomes.append((add, add.refusal))
    if acks is not None:
        # The EXEC wrote after the records were read: the WAIT covers those answers too.
        outcomes += plan.reported
        if not acks.covered(replies[-1]):
            outcomes = _unconfirmed(outcomes, acks)
    result.resolved += outcomes
    result.committed = len(plan.applies)


async def _confirm_reported(
    connection: Connection,
    plan: _Plan,
    result: AttemptResult,
    wait_until: float,
    acks: ReplicaAcks,
    *,
    turn: list[resp.Command],
) -> None:
    """Nothing to commit, only answers read from records: write the probe, then WAIT."""
    limit = bounded_wait(ROUNDTRIP_TIMEOUT_S, wait_until)
    commands: list[resp.Command] = [("UNWATCH",), *turn, acks.probe()]
    replies = await _roundtrip(connection, commands, limit, ack=acks.command(connection, limit))
    outcomes = plan.reported
    if not acks.covered(replies[-1]):
        outcomes = _unconfirmed(outcomes, acks)
    result.resolved += outcomes


def _unconfirmed(
    outcomes: list[tuple[PendingAdd, Outcome]], acks: ReplicaAcks
) -> list[tuple[PendingAdd, Outcome]]:
    metrics.REPLICA_ACKS_SHORT.inc()
    return [(add, add.unconfirmed(acks.replicas)) for add, _ in outcomes]


def _refused(exc: ResponseError, adds: Sequence[PendingAdd], result: AttemptResult) -> None:
    """Redis answered with an error: nothing of this attempt was applied. When the primary moved
    or lost its replicas, the adds are tried again (on the primary found again); otherwise a
    fence would be refused the same way."""
    for add in adds:
        if add.exec_in_flight:
            # Still maybe applied only if an earlier EXEC of it was lost: that one is still to be
            # resolved, by its record or a fence.
            add.exec_refused()
    done = {add.commit_id for add, _ in result.resolved}
    moved = _primary_refusal(exc)
    if moved is not None:
        metrics.PRIMARY_REFUSALS.labels(moved).inc()
        result.primary_refused = True
        result.retry += [add for add in adds if add.commit_id not in done]
        return
    reason = f"Redis refused the write ({exc})"
    now = asyncio.get_running_loop().time()
    for add in adds:
        if add.commit_id in done:
            continue
        if add.fencing:
            result.resolved.append((add, add.fence_not_written(reason)))
            continue
        answer = add.refuse(unavailable(f"{reason}; nothing was changed"), now)
        if answer is not None:
            result.resolved.append((add, answer))
        else:
            result.retry.append(add)


def _primary_refusal(exc: ResponseError) -> str | None:
    """`readonly` or `noreplicas` when Redis refused because of the primary's state, not the
    transaction's: a demoted primary, or fewer good replicas than min-replicas-to-write."""
    if isinstance(exc, ReadOnlyError):
        return "readonly"
    if str(exc).startswith("NOREPLICAS"):
        return "noreplicas"
    return None
