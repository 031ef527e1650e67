"""The key store's global budget: Redis's memory use as each worker last saw it, and whether new
Idempotency-Keys are paused."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from fakeredis import FakeServer
from prometheus_client import REGISTRY

from abacus.node import memory_watch, redis_pool
from abacus.node.memory_watch import MemoryWatch
from tests.unit.conftest import INFO_MEMORY, fake_pools, make_settings
from tests.waiting import PATIENCE_S, POLL_S

MB = 1 << 20


def info(used: int, maxmemory: int = 100 * MB) -> dict[str, Any]:
    return {"used_memory": used, "maxmemory": maxmemory}


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


async def eventually(condition: Callable[[], bool], patience: float = PATIENCE_S) -> bool:
    """Until `condition()` holds, letting the poller run; False after `patience` seconds."""
    for _ in range(int(patience / POLL_S)):
        if condition():
            return True
        await asyncio.sleep(POLL_S)
    return condition()


def state(watch: MemoryWatch) -> tuple[float | None, bool]:
    """(ratio, paused), read afresh each time (an attribute asserted once stays narrowed)."""
    return watch.ratio, watch.paused


def transitions(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "abacus.memory"]


def test_below_the_limit_keyed_adds_are_accepted() -> None:
    watch = MemoryWatch(limit=0.8)
    assert state(watch) == (None, False), "nothing seen yet, and nothing refused for it"
    watch.observe(info(50 * MB))
    assert state(watch) == (0.5, False)
    assert gauge("abacus_redis_memory_used_ratio") == 0.5
    assert gauge("abacus_redis_memory_used_bytes") == 50 * MB
    assert gauge("abacus_redis_maxmemory_bytes") == 100 * MB
    assert gauge("abacus_keyed_adds_paused") == 0


def test_at_the_limit_they_pause_with_one_warning_and_resume_below_it_with_one_note(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="abacus.memory")
    watch = MemoryWatch(limit=0.8)
    watch.observe(info(80 * MB))
    assert state(watch) == (0.8, True)
    assert gauge("abacus_keyed_adds_paused") == 1
    watch.observe(info(90 * MB))
    # Just below the limit is not enough: keys expire one by one, and a budget that flipped at
    # every poll around the line would flood the log.
    watch.observe(info(79 * MB))
    assert state(watch) == (0.79, True)
    watch.observe(info(77 * MB))
    assert state(watch) == (0.77, False)
    assert gauge("abacus_keyed_adds_paused") == 0
    watch.observe(info(70 * MB))
    logged = transitions(caplog)
    assert [level for level, _ in logged] == ["WARNING", "INFO"]
    warning, note = (message for _, message in logged)
    assert "80%" in warning
    assert "Idempotency-Key" in warning
    assert "key_store_full" in warning
    assert "77%" in note


def test_without_maxmemory_there_is_no_budget() -> None:
    watch = MemoryWatch(limit=0.8)
    watch.observe(info(90 * MB))
    assert watch.paused
    # maxmemory 0: Redis itself has no limit, so no share of it can be computed or refused.
    watch.observe(info(90 * MB, maxmemory=0))
    assert watch.ratio is None
    assert not watch.paused


def test_an_info_reply_without_the_figures_changes_nothing() -> None:
    watch = MemoryWatch(limit=0.8)
    watch.observe(info(85 * MB))
    watch.observe({"used_memory_human": "85M"})
    assert watch.paused
    assert watch.ratio == 0.85


def test_the_poller_reads_info_memory_until_stopped(
    redis_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(INFO_MEMORY, "used_memory", 90 * MB)
    monkeypatch.setitem(INFO_MEMORY, "maxmemory", 100 * MB)

    async def test() -> None:
        pool = fake_pools(redis_server)(make_settings())
        watch = MemoryWatch(limit=0.8)
        stop = asyncio.Event()
        poller = asyncio.create_task(memory_watch.poll(redis_pool.make_client(pool), watch, stop))
        try:
            # The first poll is at once, not after a period.
            assert await eventually(lambda: watch.ratio is not None)
            assert watch.paused
        finally:
            stop.set()
            await poller  # ends by itself once told
            await pool.disconnect()

    asyncio.run(test())


def test_the_poller_outlives_a_redis_that_is_down(redis_server: FakeServer) -> None:
    redis_server.connected = False

    def failed_polls() -> float:
        return REGISTRY.get_sample_value("abacus_redis_errors_total", {"operation": "memory"}) or 0

    async def test() -> None:
        pool = fake_pools(redis_server)(make_settings())
        watch = MemoryWatch(limit=0.8)
        seen = failed_polls()
        stop = asyncio.Event()
        poller = asyncio.create_task(
            memory_watch.poll(redis_pool.make_client(pool), watch, stop, interval_s=0.01)
        )
        try:
            assert await eventually(lambda: failed_polls() >= seen + 2)
            assert not poller.done(), "a failed poll is counted, and the next one comes"
            assert watch.ratio is None
            assert not watch.paused
        finally:
            stop.set()
            await poller  # ends by itself once told
            await pool.disconnect()

    asyncio.run(test())
