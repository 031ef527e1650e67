"""Adds and committers over a ScriptedRedis, for the commit path's unit tests."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from abacus.node.group_commit import GroupCommitter
from abacus.node.key_quota import Quota
from abacus.node.memory_watch import MemoryWatch
from abacus.node.pending_add import Others, PendingAdd
from tests.unit.scripted_redis import ScriptedPool, ScriptedRedis

SUM_KEY = "abacus:sum"


def make_add(
    number: int | str,
    key: str = "abacus:sum:idem:k",
    *,
    others: Others = Others.NONE,
    client_key: bool = False,
    deadline_in: float = 5.0,
    quota: Quota | None = None,
) -> PendingAdd:
    """An add queued now (call inside a running loop), due `deadline_in` seconds from now."""
    loop = asyncio.get_running_loop()
    return PendingAdd(
        number=Decimal(number),
        record_key=key,
        record_ttl_s=60,
        deadline=loop.time() + deadline_in,
        future=loop.create_future(),
        others=others,
        client_key=client_key,
        quota=quota,
    )


def keyed_add(
    number: int | str, key: str, quota: Quota | None = None, **options: Any
) -> PendingAdd:
    """An add with a client's Idempotency-Key (other requests may carry the same key)."""
    return make_add(number, key, others=Others.SAME_KEY, client_key=True, quota=quota, **options)


def lose_exec(add: PendingAdd) -> PendingAdd:
    """The add, after an EXEC carrying it went out and its reply was lost, as the ledger reports
    one: it may have been applied."""
    add.exec_sent()
    add.exec_reply_lost()
    return add


def quota(limit: int, counter_key: str = "abacus:sum:quota:203.0.113.7") -> Quota:
    """One client's quota, in windows of 120 s."""
    return Quota(counter_key=counter_key, limit=limit, window_s=120)


def committer(
    server: ScriptedRedis,
    *,
    deadline_s: float = 5.0,
    max_batch: int = 256,
    hang: bool = False,
    memory: MemoryWatch | None = None,
) -> GroupCommitter:
    pool: Any = ScriptedPool(server, hang=hang)
    return GroupCommitter(
        pool,
        sum_key=SUM_KEY,
        node_id="unit-node",
        max_batch=max_batch,
        deadline_s=deadline_s,
        memory=memory,
    )
