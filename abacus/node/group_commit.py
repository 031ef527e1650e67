"""Group commit: the adds waiting in a worker share one optimistic transaction.

With one transaction per request, every commit on the hot key invalidates every other in-flight
transaction, so retries grow with the number of clients. Here each worker runs one transaction at
a time for all the adds that queued while the previous one was in flight (as databases do with
their log), so conflicts are between a few workers, not hundreds of requests. Each add still gets
its own `new_sum`: the running total in queue order.

`max_batch=1` keeps one transaction per request (each add its own lane), for comparison.

The lanes run as tasks of their own: a request that goes away never cancels an EXEC in flight.

A lane decides nothing about an add's answer: it tells each add how every attempt that carried it
ended (`redis_reached`, `redis_unreachable`) and asks it between attempts what is due
(`check_time`); `pending_add` holds those rules.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from decimal import Decimal

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from abacus.node import ledger, metrics
from abacus.node.commit_turn import Turn
from abacus.node.errors import unavailable
from abacus.node.key_quota import Quota
from abacus.node.keys import KeyLayout
from abacus.node.memory_watch import MemoryWatch
from abacus.node.pending_add import Committed, Others, PendingAdd
from abacus.node.redis_pool import CONNECT_TIMEOUT_S
from abacus.node.replica_acks import ReplicaAcks

log = logging.getLogger("abacus.commit")

# A conflict means another worker just committed: the sum moved on and retrying soon is right,
# the jitter only spreads the workers apart. An unreachable Redis wants longer pauses.
CONFLICT_BACKOFF = (0.001, 0.008)
REDIS_BACKOFF = (0.01, 0.2)
# Longest wait for a lane's connection: a free one from the pool, TCP connect, handshake.
CONNECT_BUDGET_S = CONNECT_TIMEOUT_S + ledger.ROUNDTRIP_TIMEOUT_S
# How long an add keeps trying while Redis refuses connections, before it is answered 503: a
# restart that quick goes unnoticed, an outage is reported fast instead of at the deadline.
UNREACHABLE_GIVE_UP_S = 0.75

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


def backoff(failures: int, base: float, cap: float) -> float:
    """Capped exponential backoff with full jitter."""
    # The exponent capped: past it the cap rules anyway, and 2 ** 1024 overflows a float.
    return random.uniform(0, min(cap, base * 2 ** min(failures - 1, 32)))


class _Lane:
    """A queue of adds and the one task that commits them, a batch at a time."""

    def __init__(self, committer: GroupCommitter) -> None:
        self.committer = committer
        self.queue: deque[PendingAdd] = deque()
        self.task: asyncio.Task[None] | None = None
        # Held from the pool while the lane has work, so that attempts do not queue for one.
        self.connection: Connection | None = None

    def push(self, add: PendingAdd) -> None:
        self.queue.append(add)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._drain())
            self.committer.track(self.task)

    async def _drain(self) -> None:
        try:
            await self._commit_queued()
        finally:
            if self.connection is not None:
                await self.committer.pool.release(self.connection)
                self.connection = None

    async def _commit_queued(self) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while self.queue:
            self._expire(loop.time())
            if not self.queue:
                break
            leaders, followers = self._take_batch()
            retry, redis_down = await self._attempt(leaders)
            for leader in leaders:
                outcome = leader.outcome
                if outcome is None:
                    continue
                waiting = followers.pop(leader.record_key, [])
                if isinstance(outcome, Committed):
                    for follower in waiting:
                        follower.resolve(follower.replay_of(outcome.body))
                else:
                    # The leader's answer is its own (refused, or unknown): each duplicate reads
                    # the key's record again in an attempt of its own.
                    self.queue.extendleft(reversed(waiting))
            if not retry:
                failures = 0
                continue
            retried = {add.commit_id for add in retry}
            # The batch goes back to the front in its order, duplicates behind their leaders.
            again = [a for a in leaders if a.commit_id in retried]
            again += [f for a in again for f in followers.get(a.record_key, [])]
            self.queue.extendleft(reversed(again))
            failures += 1
            metrics.RETRIES.inc(len(again))
            pause = backoff(failures, *(REDIS_BACKOFF if redis_down else CONFLICT_BACKOFF))
            nearest = min(add.decide_by for add in self.queue) - loop.time()
            await asyncio.sleep(max(0.0, min(pause, nearest)))

    def _take_batch(self) -> tuple[list[PendingAdd], dict[str, list[PendingAdd]]]:
        """Up to max_batch adds with distinct record keys; same-key duplicates ride along."""
        leaders: list[PendingAdd] = []
        followers: dict[str, list[PendingAdd]] = {}
        seen: set[str] = set()
        while self.queue and len(leaders) < self.committer.max_batch:
            add = self.queue.popleft()
            if add.record_key in seen:
                followers.setdefault(add.record_key, []).append(add)
            else:
                seen.add(add.record_key)
                leaders.append(add)
        return leaders, followers

    async def _attempt(self, batch: list[PendingAdd]) -> tuple[list[PendingAdd], bool]:
        """Run one transaction; resolve what it decided. Returns what must be tried again, and
        whether that is because Redis could not be reached."""
        for add in batch:
            add.attempts += 1
            add.batch_size = len(batch)
        owner = self.committer
        try:
            if self.connection is None:
                # No wait of this attempt outlasts the moment one of its adds must be decided.
                decide_by = min(add.decide_by for add in batch)
                self.connection = await _connection(owner.pool, decide_by)
            result = await ledger.attempt(
                self.connection,
                owner.sum_key,
                owner.node_id,
                batch,
                store_full=owner.store_full,
                acks=owner.acks,
                turn=owner.turn,
            )
        except REDIS_DOWN as exc:
            self._unreachable(exc, batch)
            return list(batch), True
        except Exception:
            # A bug must not strand the batch: its adds go back and still meet their deadlines.
            # It says nothing of whether Redis can be reached, so no outage starts or ends; what
            # an EXEC it interrupted may have done, the ledger has already reported.
            log.exception("commit attempt failed unexpectedly")
            return list(batch), True
        if result.committed:
            metrics.BATCH_SIZE.observe(result.committed)
        for add in batch:
            add.redis_reached()
        if result.retry:
            metrics.CONFLICTS.inc()
            for add in result.retry:
                add.conflicts += 1
        counted = 0
        for add, outcome in result.resolved:
            counted += isinstance(outcome, Committed) and not outcome.replayed
            add.resolve(outcome)
        if counted:
            metrics.ADDS_COMMITTED.inc(counted)
        # A primary that was demoted or lacks replicas is a failover under way: back off as for
        # an unreachable Redis (the next attempt asks the Sentinels again).
        return list(result.retry), result.primary_refused

    def _unreachable(self, exc: Exception, batch: list[PendingAdd]) -> None:
        metrics.REDIS_ERRORS.labels("commit").inc()
        ambiguous = [add for add in batch if add.may_be_in_redis]
        if ambiguous:
            metrics.AMBIGUOUS_COMMITS.inc()
        log.warning(
            "commit attempt failed: %s: %s",
            type(exc).__name__,
            exc,
            extra={"batch_size": len(batch), "ambiguous_adds": len(ambiguous)},
        )
        now = asyncio.get_running_loop().time()
        # Refused or reset: Redis is gone, say so soon. A timeout may be a stall (a pause,
        # a slow fsync) that ends before the deadline: keep trying until then.
        stalled = isinstance(exc, RedisTimeoutError)
        for add in batch:
            add.redis_unreachable(now, stalled=stalled)

    def _expire(self, now: float) -> None:
        """Answer the adds whose time ran out, as `PendingAdd.check_time` rules."""
        kept: deque[PendingAdd] = deque()
        for add in self.queue:
            answer = add.check_time(now, UNREACHABLE_GIVE_UP_S)
            if answer is None:
                kept.append(add)
            else:
                add.resolve(answer)
        self.queue = kept


async def _connection(pool: ConnectionPool, wait_until: float) -> Connection:
    """A connection from the pool, bounded as a whole: waiting for a free one, connecting, and
    the handshake (AUTH, CLIENT SETINFO), which the commit pool's sockets otherwise wait on
    forever while Redis is stalled."""
    try:
        async with asyncio.timeout(ledger.bounded_wait(CONNECT_BUDGET_S, wait_until)):
            connection: Connection = await pool.get_connection()  # type: ignore[no-untyped-call]
            return connection
    except TimeoutError:
        raise RedisTimeoutError("no connection to Redis in time") from None


class GroupCommitter:
    """Takes adds from the requests of one worker and commits them through its lanes."""

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        sum_key: str,
        node_id: str,
        max_batch: int,
        deadline_s: float,
        memory: MemoryWatch | None = None,
        acks: ReplicaAcks | None = None,
        turns: bool = True,
    ) -> None:
        self.pool = pool
        self.sum_key = sum_key
        self.node_id = node_id
        self.max_batch = max_batch
        self.deadline_s = deadline_s
        # Redis's memory as the worker last polled it: new client keys pause when it is full.
        self.memory = memory
        # How many replicas must confirm what an answer reports (replica_acks.py); None: none.
        self.acks = acks
        # Group commit's lanes take turns (commit_turn.py); one transaction per request, the
        # comparison, keeps plain optimistic locking.
        self.keys = KeyLayout(sum_key)
        self.turn = Turn(self.keys.turn) if turns and max_batch > 1 else None
        self._shared_lane: _Lane | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def store_full(self) -> bool:
        return self.memory is not None and self.memory.paused

    def track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def submit(
        self,
        number: Decimal,
        record_key: str | None,
        record_ttl_s: int,
        *,
        others: Others = Others.NONE,
        client_key: bool = False,
        quota: Quota | None = None,
    ) -> PendingAdd:
        """Queue an add; `record_key` None gives it a record of its own (no idempotency key);
        `quota`: its client's, which its new record counts against."""
        loop = asyncio.get_running_loop()
        add = PendingAdd(
            number=number,
            record_key="",
            record_ttl_s=record_ttl_s,
            deadline=loop.time() + self.deadline_s,
            future=loop.create_future(),
            others=others,
            client_key=client_key,
            quota=quota,
        )
        add.record_key = record_key or self.keys.own_record(add.commit_id)
        if self._closing:
            refusal = unavailable("this node is shutting down; nothing was changed")
            answer = add.refuse(refusal, loop.time())
            if answer is not None:
                add.resolve(answer)
                return add
            # Other requests carry the same key: the lanes, still draining, write its fence.
        if self.max_batch == 1:
            _Lane(self).push(add)
        else:
            if self._shared_lane is None:
                self._shared_lane = _Lane(self)
            self._shared_lane.push(add)
        return add

    async def close(self) -> None:
        """Stop taking adds and wait for every queued one to be answered."""
        self._closing = True
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
