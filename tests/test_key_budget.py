"""The key budget on real stacks: one client's quota of new Idempotency-Keys, and the key store's
share of Redis's memory. Neither ever refuses a keyless add, a replay, a read or a reset, and
nothing a budget refused is counted."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections import Counter
from decimal import Decimal

import pytest
import redis
from requests.structures import CaseInsensitiveDict

from abacus.local_stack import LocalStack
from tests import metrics_text
from tests.api_client import ADMIN_TOKEN, Api, Reply, decode
from tests.conftest import StackFactory
from tests.load import add_concurrently
from tests.raw_http import exchange
from tests.waiting import wait_for_log, wait_until

pytestmark = pytest.mark.stack

QUOTA = 5
# Linux routes all of 127.0.0.0/8 to the loopback: another source address is another client.
OTHER_CLIENT = "127.0.0.3"


def fresh_key() -> str:
    return f"budget-{uuid.uuid4()}"


def redis_client(stack: LocalStack) -> redis.Redis:
    return redis.Redis.from_url(stack.config.effective_redis_url, socket_timeout=5)


def add_from(stack: LocalStack, source: str, number: int, key: str) -> Reply:
    """An add through the balancer from another source address."""
    body = json.dumps({"number": number}).encode()
    head = (
        "POST /abacus/number HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nIdempotency-Key: {key}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    raw = exchange(stack.config.port, head.encode() + body, source=source)
    assert raw.status is not None, "the balancer answered"
    text = raw.body.decode()
    fields = (line.split(": ", 1) for line in raw.head.split("\r\n")[1:] if ": " in line)
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict({name: value for name, value in fields})
    return Reply(raw.status, headers, decode(text), text)


def refusals(stack: LocalStack, reason: str) -> float:
    """Budget refusals of every node of `stack`, by reason (the error code)."""
    return sum(
        metrics_text.value(
            metrics_text.scrape(port), "abacus_key_budget_refusals_total", reason=reason
        )
        for port in stack.config.node_ports
    )


def assert_refused(reply: Reply, status: int, code: str) -> None:
    assert reply.status == status, reply.text
    assert reply.body["error"] == code, reply.text
    assert int(reply.headers["Retry-After"]) >= 1, reply.headers
    assert "Idempotent-Replayed" not in reply.headers


def test_one_client_past_its_quota_gets_429_and_nobody_else_notices(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(ABACUS_KEYS_PER_CLIENT=str(QUOTA))
    api = Api(stack.config.url)
    counted = 0
    firsts: list[tuple[str, Reply]] = []
    for n in range(QUOTA):
        key = fresh_key()
        reply = api.add(2**n, key=key)
        assert reply.status == 200, reply.text
        counted += 2**n
        firsts.append((key, reply))

    refused_key = fresh_key()
    over = api.add(2**QUOTA, key=refused_key)
    assert_refused(over, 429, "key_quota_exhausted")
    assert int(over.headers["Retry-After"]) <= 86400, "until its window ends"
    # Asked again, the key is still refused: it did not count and nothing of it was stored.
    assert_refused(api.add(2**QUOTA, key=refused_key), 429, "key_quota_exhausted")

    # The same client's keyless adds and replays, and other clients' keys, go on.
    keyless = api.add(2 ** (QUOTA + 1))
    assert keyless.status == 200, keyless.text
    counted += 2 ** (QUOTA + 1)
    for key, first in firsts:
        replay = api.add(first.body["added"], key=key)
        assert replay.status == 200, replay.text
        assert replay.headers.get("Idempotent-Replayed") == "true"
        assert replay.text == first.text
    other = add_from(stack, OTHER_CLIENT, 2 ** (QUOTA + 2), fresh_key())
    assert other.status == 200, other.text
    counted += 2 ** (QUOTA + 2)

    # The client is what the balancer saw: an X-Real-IP it sends is overwritten by nginx, and
    # one sent straight to a node (not from the balancer) is not believed.
    forged = {"X-Real-IP": "198.51.100.9", "Content-Type": "application/json"}
    for url in (stack.config.url, f"http://127.0.0.1:{stack.config.node_port}"):
        headers = {**forged, "Idempotency-Key": fresh_key()}
        reply = Api(url).request("POST", "/abacus/number", data='{"number": 1}', headers=headers)
        assert_refused(reply, 429, "key_quota_exhausted")

    assert api.sum() == counted, "exact: nothing a budget refused counted"
    assert refusals(stack, "key_quota_exhausted") == 4
    with contextlib.closing(redis_client(stack)) as client:
        counters = {
            key.decode().removeprefix("abacus:sum:quota:"): int(client.get(key) or 0)
            for key in client.scan_iter("abacus:sum:quota:*")
        }
        window_left_s = client.ttl("abacus:sum:quota:127.0.0.1")
    assert counters == {"127.0.0.1": QUOTA, OTHER_CLIENT: 1}
    assert 0 < window_left_s <= 86400, "a window lasts as long as the records it counts"
    assert int(over.headers["Retry-After"]) >= window_left_s


def test_the_quota_holds_exactly_under_concurrent_adds_on_every_node(
    make_stack: StackFactory,
) -> None:
    """The counters are read under the same WATCH as the sum, which every committing
    transaction writes: however many adds race on however many workers, the quota holds."""
    quota = 20
    stack = make_stack(ABACUS_KEYS_PER_CLIENT=str(quota))
    numbers = [str(n) for n in range(1, 61)]
    replies = add_concurrently(
        stack.config.url, numbers, clients=24, keys=[fresh_key() for _ in numbers]
    )
    outcomes = Counter(r.status if r.status == 200 else r.body["error"] for r in replies)
    assert outcomes == {200: quota, "key_quota_exhausted": len(numbers) - quota}, outcomes
    served = {r.headers["X-Node-Id"] for r in replies if r.status == 200}
    assert len(served) > 1, f"the accepted adds came through several nodes: {served}"
    accepted = sum(Decimal(r.body["added"]) for r in replies if r.status == 200)
    assert Api(stack.config.url).sum() == accepted


def test_a_nearly_full_key_store_pauses_new_keys_and_nothing_else(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(nodes=1, ABACUS_KEY_STORE_LIMIT="0.5")
    api = Api(stack.config.url)
    node_port = stack.config.node_port
    node = Api(f"http://127.0.0.1:{node_port}")
    workers = stack.config.workers
    before = api.add(1, key=fresh_key())
    assert before.status == 200, before.text
    before_key = fresh_key()
    first = api.add(2, key=before_key)
    assert first.status == 200

    client = redis_client(stack)
    original = str(client.config_get("maxmemory")["maxmemory"])
    try:
        used = int(client.info("memory")["used_memory"])
        # About two thirds used: past the nodes' 50% limit, with room left in Redis.
        client.config_set("maxmemory", used * 3 // 2)
        paused = wait_until(lambda: metrics_text.keyed_adds_paused(node_port) == workers)
        assert paused, "every worker saw it"

        health = node.request("GET", "/health")
        assert health.status == 200, "paused keys are not a node down: " + health.text
        assert health.body["keyed_adds"] == "paused"
        assert health.body["memory_used_ratio"] >= Decimal("0.5")
        ratio = metrics_text.value(metrics_text.scrape(node_port), "abacus_redis_memory_used_ratio")
        assert ratio >= 0.5

        refused_key = fresh_key()
        refused = api.add(4, key=refused_key)
        assert_refused(refused, 503, "key_store_full")
        assert "memory" in refused.body["message"]
        assert int(refused.headers["Retry-After"]) > 1, "memory frees slowly: no hammering"
        keyless = api.add(8)
        assert keyless.status == 200, "keyless adds go on in the headroom: " + keyless.text
        replay = api.add(2, key=before_key)
        assert replay.status == 200, replay.text
        assert replay.headers.get("Idempotent-Replayed") == "true"
        assert api.sum() == 1 + 2 + 8
        assert refusals(stack, "key_store_full") == 1
        assert wait_for_log(stack.log_path("node-1"), "new Idempotency-Keys paused")

        reset = api.reset(ADMIN_TOKEN)
        assert reset.status == 200, "resets are never refused: " + reset.text

        client.config_set("maxmemory", original)
        resumed = wait_until(lambda: metrics_text.keyed_adds_paused(node_port) == 0)
        assert resumed, "every worker resumed"
        assert wait_for_log(stack.log_path("node-1"), "new Idempotency-Keys accepted again")
        assert node.request("GET", "/health").body["keyed_adds"] == "accepted"
        again = api.add(4, key=refused_key)
        assert again.status == 200, again.text
        assert again.headers.get("Idempotent-Replayed") is None, "the refused add never counted"
        assert api.sum() == 4
    finally:
        client.config_set("maxmemory", original)
        client.close()
