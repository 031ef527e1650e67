"""Redis crashing, restarting, cutting connections, stalling and full: no acknowledged add lost.

Adds may fail or end unknown while Redis is gone; the checker then judges the final sum as the
acknowledged adds plus some subset of the unknown ones, never less and never an add twice. The
checker's load runs until the fault is over and some adds after it.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import redis

from abacus.harness.check import CheckReport
from abacus.harness.history import Kind, Outcome
from abacus.local_stack import LocalStack
from tests import metrics_text
from tests.api_client import Api, Reply, timed_add
from tests.bounds import HEALTH_BOUND_S, RESOLVE_GRACE_S, SLACK_S
from tests.conftest import StackFactory
from tests.fault_support import (
    acknowledged_after,
    assert_consistent,
    assert_exact_sum,
    background_check,
    counts,
    explain,
)
from tests.waiting import PATIENCE_S, wait_all_healthy, wait_for_pending_adds, wait_until

pytestmark = pytest.mark.stack

# How long Redis stays down at least, once the clients have seen it gone.
REDIS_DOWN_S = 1.0
# How long the client-kill storm lasts, and how often it cuts every connection.
STORM_S = 3.0
STORM_EVERY_S = 0.05


def fresh_key() -> str:
    return f"fault-{uuid.uuid4()}"


def redis_client(stack: LocalStack) -> redis.Redis:
    return redis.Redis.from_url(
        stack.config.effective_redis_url, socket_timeout=5, socket_connect_timeout=5
    )


def assert_fault_hit_and_recovered(report: CheckReport, stack: LocalStack, back: float) -> None:
    seen = counts(report)["adds"]
    assert seen["failed"] + seen["unknown"] > 0, "the outage was seen: " + explain(report, stack)
    assert acknowledged_after(report, back) > 0, "adds succeed again: " + explain(report, stack)
    # No acknowledged add lost (also part of the verdict): the final sum holds every one.
    verdict = report.verdict
    assert verdict.final_sum is not None
    assert verdict.final_sum >= verdict.expected_min, explain(report, stack)


@pytest.mark.parametrize("stop", ["kill", "stop"])
def test_redis_restart_in_the_middle_of_a_run(make_stack: StackFactory, stop: str) -> None:
    """Redis SIGKILLed (or stopped gracefully) mid-run, started again from its files once the
    clients have seen it gone, and at least ~1 s later."""
    stack = make_stack()
    with background_check(stack, concurrency=32, seed=71) as run:
        run.wait_for_adds(500)
        assert not run.done()
        stack.redis(stop)
        down_at = time.monotonic()
        run.wait_for_errors()
        # The rest of this sleep is the fault: Redis down for at least REDIS_DOWN_S.
        time.sleep(max(0.0, down_at + REDIS_DOWN_S - time.monotonic()))
        stack.redis("start")
        back = time.monotonic()
        report = run.finish(back)

    assert_consistent(report, stack)
    assert_fault_hit_and_recovered(report, stack, back)


def test_client_kill_storm_during_a_run(make_stack: StackFactory) -> None:
    """Every normal connection to Redis cut every ~50 ms for 3 s while adds and reads run."""
    stack = make_stack()
    killer = redis_client(stack)
    killed: list[int] = []
    stop = threading.Event()

    def storm() -> None:
        ends = time.monotonic() + STORM_S
        while time.monotonic() < ends and not stop.is_set():
            # skipme: our own connection survives (and redis-py reconnects if it did not).
            with contextlib.suppress(redis.RedisError):
                killed.append(int(killer.client_kill_filter(_type="normal", skipme=True)))
            time.sleep(STORM_EVERY_S)  # the fault's own pace, not a wait for anything

    with (
        contextlib.closing(killer),
        background_check(stack, concurrency=32, seed=73) as run,
    ):
        run.wait_for_adds(200)
        assert not run.done()
        storm_thread = threading.Thread(target=storm)
        storm_thread.start()
        try:
            storm_thread.join(STORM_S + PATIENCE_S)
        finally:
            stop.set()
            storm_thread.join()
        report = run.finish(time.monotonic())

    assert sum(killed) > 0, "connections were cut"
    assert_exact_sum(report, stack)
    reads = [op for op in report.history.operations if op.kind is Kind.READ]
    failed = [op for op in reads if op.outcome is not Outcome.OK]
    # Redis stays reachable: a read on a cut connection is retried on a fresh one (without that,
    # about one read in six fails here).
    assert len(failed) <= len(reads) // 20, f"{len(failed)} of {len(reads)} reads failed"


def test_paused_writes_answer_503_by_the_deadline_then_service_resumes(
    make_stack: StackFactory,
) -> None:
    deadline_s = 1.5
    stack = make_stack(ABACUS_ADD_DEADLINE_MS=str(int(deadline_s * 1000)))
    api = Api(stack.config.url)
    assert api.add(1, key=fresh_key()).status == 200
    numbers = [2**i for i in range(1, 13)]  # distinct bits: the sum tells exactly which counted

    # Long enough that every add is answered (its deadline, the resolve grace, the slack)
    # while writes are still paused: its 503 then comes from the deadline, not the pause's end.
    pause_s = deadline_s + RESOLVE_GRACE_S + SLACK_S + 0.5
    paused_at = time.monotonic()  # a little before the pause begins: the checks below are safe
    with contextlib.closing(redis_client(stack)) as client:
        client.client_pause(int(pause_s * 1000), all=False)  # CLIENT PAUSE ... WRITE
    with ThreadPoolExecutor(max_workers=len(numbers)) as pool:
        adding = [pool.submit(timed_add, stack.config.url, n, fresh_key()) for n in numbers]
        # Health and the read are checked while the nodes hold every add.
        arrived = wait_for_pending_adds(
            stack.config.node_ports,
            len(numbers),
            timeout=pause_s,
            give_up=lambda: any(future.done() for future in adding),
        )
        assert arrived, "every add reached a node and waits there"
        node = Api(f"http://127.0.0.1:{stack.config.node_port}")
        health_started = time.monotonic()
        health = node.request("GET", "/health")
        health_seconds = time.monotonic() - health_started
        read = api.request("GET", "/abacus/sum")
        checked_while_paused = time.monotonic() < paused_at + pause_s
        adds = [future.result() for future in adding]
    answered_while_paused = time.monotonic() < paused_at + pause_s

    assert checked_while_paused, "health and read were checked while writes were paused"
    assert answered_while_paused, "every add was answered before the pause ended"
    assert health.status == 503, health.text
    assert health.body["status"] == "unhealthy"
    assert health.body["redis_connected"] is False
    assert health_seconds < HEALTH_BOUND_S + SLACK_S
    assert read.status == 200, "reads still work while writes are paused: " + read.text
    assert read.body["sum"] == 1
    for add in adds:
        assert add.reply.status == 503, add.reply.text
        # Keyed adds: other requests may carry the same key, and no fence can be written while
        # writes are paused, so "nothing changed" would not be known to stay true.
        assert add.reply.body["error"] == "outcome_unknown", add.reply.text
        assert add.reply.headers.get("Retry-After"), add.reply.headers
        assert add.seconds < deadline_s + RESOLVE_GRACE_S + SLACK_S, (
            f"{add.number}: {add.seconds:.2f} s"
        )

    # The pause ends by itself: the nodes serve again, with no restart.
    wait_all_healthy(stack)
    unknown = [a for a in adds if a.reply.body["error"] == "outcome_unknown"]
    unavailable = [a for a in adds if a.reply.body["error"] == "unavailable"]
    applied = int(api.sum()) - 1
    assert applied >= 0
    assert applied & ~sum(a.number for a in unknown) == 0, (
        f"only outcome_unknown adds may have counted: {applied:#b}, "
        f"unavailable {[a.number for a in unavailable]}"
    )
    # Retried with its key, each unknown add tells whether it counted: a replay if it did, a 409
    # if a fence written for it (held by the pause, run after it) refused it for good, a fresh
    # 200 if neither had happened.
    counted_in_the_end = 0
    for add in unknown:
        retry = api.add(add.number, key=add.key)
        counted = applied & add.number != 0
        if retry.status == 409:
            assert retry.body["error"] == "idempotency_key_refused", retry.text
            assert not counted, f"{add.number}: refused for good, yet counted"
            continue
        assert retry.status == 200, retry.text
        replayed = retry.headers.get("Idempotent-Replayed") == "true"
        assert replayed == counted, f"{add.number}: counted {counted}, replayed {replayed}"
        counted_in_the_end += add.number
    after = api.add(8192, key=fresh_key())
    assert after.status == 200, after.text
    assert api.sum() == 1 + counted_in_the_end + 8192, "every add counted once"


def test_durability_policy_of_the_stacks_redis(stack: LocalStack) -> None:
    client = redis_client(stack)
    try:
        config = client.config_get("appendonly") | client.config_get("appendfsync")
        config |= client.config_get("maxmemory-policy")
    finally:
        client.close()
    assert config == {
        "appendonly": "yes",
        "appendfsync": "always",
        "maxmemory-policy": "noeviction",
    }


def test_full_memory_refuses_adds_and_evicts_nothing(make_stack: StackFactory) -> None:
    stack = make_stack(nodes=1)
    api = Api(stack.config.url)
    client = redis_client(stack)
    original = str(client.config_get("maxmemory")["maxmemory"])
    acknowledged: list[tuple[str, Reply]] = []
    try:
        for n in range(1, 21):
            key = fresh_key()
            reply = api.add(n, key=key)
            assert reply.status == 200, reply.text
            acknowledged.append((key, reply))
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", used + 64 * 1024)

        refused: tuple[str, Reply] | None = None
        for _ in range(5000):
            key = fresh_key()
            reply = api.add(1, key=key)
            if reply.status != 200:
                refused = (key, reply)
                break
            acknowledged.append((key, reply))
        assert refused is not None, "memory filled up within 5,000 adds"
        refused_key, reply = refused
        assert reply.status == 503, reply.text
        assert reply.headers.get("Retry-After"), reply.headers
        assert isinstance(reply.body["error"], str)
        assert "memory" in reply.body["message"].lower(), "a clear error: " + reply.text

        # Nothing evicted: the sum is exact, the earlier records answer replays.
        total = sum(Decimal(r.body["added"]) for _, r in acknowledged)
        assert api.sum() == total
        assert client.info("stats")["evicted_keys"] == 0
        assert client.exists("abacus:sum") == 1  # ABACUS_KEY's default
        for key, first in (acknowledged[0], acknowledged[-1]):
            again = api.add(first.body["added"], key=key)
            assert again.status == 200, again.text
            assert again.headers.get("Idempotent-Replayed") == "true"
            assert again.text == first.text
        assert api.sum() == total

        client.config_set("maxmemory", original)
        # Short of memory, the nodes also paused new keys (503 key_store_full); each worker
        # takes them again once its poll sees the room.
        port = stack.config.node_port
        assert wait_until(lambda: metrics_text.keyed_adds_paused(port) == 0), "keys resumed"
        retry = api.add(1, key=refused_key)
        assert retry.status == 200, retry.text
        assert retry.headers.get("Idempotent-Replayed") is None, "the refused add never counted"
        assert api.add(5, key=fresh_key()).status == 200
        assert api.sum() == total + 1 + 5
    finally:
        client.config_set("maxmemory", original)
        client.close()
