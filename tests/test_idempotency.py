"""Idempotency-Key: a repeat returns the first response and adds nothing, from any node."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
import redis

from abacus.local_stack import LocalStack
from tests.api_client import Api
from tests.load import add_concurrently
from tests.metrics_text import scrape, value
from tests.raw_http import exchange
from tests.waiting import wait_for_pending_adds

pytestmark = pytest.mark.stack

# Writes stay paused until the test ends the pause itself; this only bounds a test that dies.
PAUSE_MS = 60_000


def fresh_key() -> str:
    return f"test-{uuid.uuid4()}"


def test_repeat_returns_first_response_and_adds_once(api: Api) -> None:
    key = fresh_key()
    first = api.add(5, key=key)
    assert first.status == 200
    assert "Idempotent-Replayed" not in first.headers
    api.add(1)
    again = api.add("5.0", key=key)  # the same value, written differently
    assert again.status == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.text == first.text, "the stored first response, byte for byte"
    assert again.body["node_id"] == first.body["node_id"], "node_id: the node that applied it"
    assert api.sum() == 6


def test_replay_is_served_by_every_node(api: Api) -> None:
    key = fresh_key()
    first = api.add(9, key=key)
    replayers = set()
    for _ in range(6):
        reply = api.add(9, key=key)
        assert reply.status == 200
        assert reply.text == first.text
        replayers.add(reply.headers["X-Node-Id"])
    assert replayers == {"node-1", "node-2", "node-3"}
    assert api.sum() == 9


def test_same_key_with_a_different_number_is_refused(api: Api) -> None:
    key = fresh_key()
    assert api.add(7, key=key).status == 200
    reply = api.add(8, key=key)
    assert reply.status == 422
    assert reply.body["error"] == "idempotency_key_reused"
    assert api.sum() == 7


def test_keys_survive_a_reset(api: Api) -> None:
    key = fresh_key()
    first = api.add(4, key=key)
    assert api.reset().status == 200
    again = api.add(4, key=key)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.text == first.text
    assert api.sum() == 0


def test_fifty_concurrent_duplicates_over_the_nodes_add_once(api: Api, stack: LocalStack) -> None:
    key = fresh_key()
    replies = add_concurrently(stack.config.url, ["3"] * 50, clients=50, keys=[key] * 50)
    assert [r.status for r in replies] == [200] * 50
    assert len({r.text for r in replies}) == 1, "everyone gets the one first response"
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in replies) == 49
    assert len({r.headers["X-Node-Id"] for r in replies}) == 3, "spread over the nodes"
    assert api.sum() == 3


def test_concurrent_same_key_different_numbers_one_wins(api: Api, stack: LocalStack) -> None:
    key = fresh_key()
    replies = add_concurrently(stack.config.url, ["1", "2"] * 10, clients=20, keys=[key] * 20)
    winners = {r.body["added"] for r in replies if r.status == 200}
    assert len(winners) == 1
    (winner,) = winners
    refused = [r for r in replies if r.status == 422]
    assert all(r.body["error"] == "idempotency_key_reused" for r in refused)
    assert len(refused) == 10
    assert api.sum() == winner


def test_retry_after_a_client_timeout_gets_the_first_response(stack: LocalStack) -> None:
    """The first attempt's answer is lost to a client timeout; the retry learns it counted."""
    api = Api(stack.config.url)
    api.reset()
    key = fresh_key()
    node = f"http://127.0.0.1:{stack.config.node_port}"
    client = redis.Redis.from_url(stack.config.effective_redis_url)
    # The add waits in the node past the client's patience, until the test lets it commit.
    client.client_pause(PAUSE_MS, all=False)
    impatient = Api(node, timeout=0.3)
    timed_out = threading.Event()

    def first_attempt() -> None:
        try:
            impatient.add(6, key=key)
        except Exception:
            timed_out.set()

    try:
        thread = threading.Thread(target=first_attempt)
        thread.start()
        thread.join()
        assert wait_for_pending_adds([stack.config.node_port], 1), "the node holds the add"
    finally:
        client.client_unpause()
        client.close()
    assert timed_out.is_set(), "the first attempt timed out on the client side"
    retry = api.add(6, key=key)  # the first attempt commits, the retry replays it
    assert retry.status == 200
    assert retry.body["new_sum"] == 6
    assert api.sum() == 6, "the sum moved once"


def test_a_client_cannot_forge_the_balancers_retry_key(api: Api, stack: LocalStack) -> None:
    """Only the balancer's address may name the implicit key: a client's never merges adds."""
    forged = {"Content-Type": "application/json", "X-Abacus-Retry-Key": "0123456789abcdef"}
    node = Api(f"http://127.0.0.1:{stack.config.node_port}")
    for client in (api, api, node, node):  # through nginx (it overwrites) and directly
        reply = client.request("POST", "/abacus/number", data='{"number": 1}', headers=forged)
        assert reply.status == 200
        assert "Idempotent-Replayed" not in reply.headers
    assert api.sum() == 4, "four adds with the same forged key all counted"


def test_no_local_address_or_guessed_secret_makes_the_retry_key_trusted(
    api: Api, stack: LocalStack
) -> None:
    """The hostile review's attack: a local process may bind any 127.0.0.0/8 address (the
    balancer's old trusted one included) and send a retry key twice, straight to a node. Only
    the secret nginx and the nodes share makes the key the balancer's."""
    port = stack.config.node_port
    untrusted_before = value(scrape(port), "abacus_untrusted_retry_keys_total")
    for secret_header in (b"", b"X-Abacus-Balancer-Secret: " + b"0" * 64 + b"\r\n"):
        for _ in range(2):
            request = (
                b"POST /abacus/number HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 13\r\n"
                b"X-Abacus-Retry-Key: 0123456789abcdef\r\nX-Abacus-Try: first\r\n"
                + secret_header
                + b"Connection: close\r\n\r\n"
                + b'{"number": 1}'
            )
            reply = exchange(port, request, source="127.0.0.2")
            assert reply.status == 200, reply.head
            assert "idempotent-replayed" not in reply.head.lower()
    assert api.sum() == 4, "each of the four adds counted"
    untrusted = value(scrape(port), "abacus_untrusted_retry_keys_total") - untrusted_before
    assert untrusted == 4, "each untrusted retry key is counted for the operators"


def _process_tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(p for child in children for p in _process_tree(int(child)))]


def test_the_balancer_secret_is_in_owner_only_files_and_nowhere_else(stack: LocalStack) -> None:
    path = stack.config.balancer_secret_path
    secret = path.read_text().strip().encode()
    assert len(secret) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    rendered = stack.dir / "nginx" / "conf.d" / "abacus.conf"
    assert rendered.stat().st_mode & 0o777 == 0o600
    assert secret in rendered.read_bytes()
    for process in stack.processes.values():
        for pid in _process_tree(process.pid):
            for part in ("cmdline", "environ"):
                assert secret not in Path(f"/proc/{pid}/{part}").read_bytes(), (pid, part)
