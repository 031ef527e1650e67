"""Every endpoint in process, over fakeredis: the shapes tests/test_api.py and tests/test_numbers.py
check through the real stack, and the Redis failures that stack cannot easily stage."""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import fakeredis
import httpx2
import pytest
from fakeredis import FakeServer
from fakeredis.aioredis import FakeAsyncRedisConnection
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from abacus.node import memory_watch, openapi, routes
from abacus.node.settings import Settings
from tests.request_tables import GRAMMAR, JSON, MAX, TINY
from tests.unit.conftest import (
    ADMIN_TOKEN,
    BALANCER_SECRET,
    INFO_MEMORY,
    INFO_STATS,
    NODE_ID,
    SUM_KEY,
    ClientFactory,
    fake_pools,
    make_settings,
)


def add(client: TestClient, number: object, **headers: str) -> httpx2.Response:
    return client.post(
        "/abacus/number", content=f'{{"number": {number}}}', headers={**JSON, **headers}
    )


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def read_sum(client: TestClient) -> Decimal:
    reply = client.get("/abacus/sum")
    assert reply.status_code == 200, reply.text
    value = json.loads(reply.text, parse_float=Decimal, parse_int=Decimal)["sum"]
    assert isinstance(value, Decimal)
    return value


def assert_timestamp(value: str) -> None:
    assert datetime.fromisoformat(value).utcoffset() is not None, "timestamps carry their offset"


@pytest.fixture
def down_server() -> FakeServer:
    """A Redis that refuses every connection."""
    server = FakeServer()
    server.connected = False
    return server


def test_add_returns_new_sum_and_exact_decimals(client: TestClient) -> None:
    first = add(client, "0.1")
    assert first.status_code == 200
    assert set(first.json()) == {"new_sum", "added", "timestamp", "node_id"}
    second = add(client, "0.2")
    assert second.status_code == 200
    assert second.text.startswith('{"new_sum": 0.3, "added": 0.2, '), "exact, written plainly"
    assert second.json()["node_id"] == second.headers["x-node-id"] == NODE_ID
    assert_timestamp(second.json()["timestamp"])
    assert read_sum(client) == Decimal("0.3")


def test_negative_and_decimal_numbers(client: TestClient) -> None:
    for number in ("-5", "2.5", "-0.25", "1e2", "-1.5E1"):
        assert add(client, number).status_code == 200
    assert client.get("/abacus/sum").text.startswith('{"sum": 82.25,')


@pytest.mark.parametrize(("literal", "status", "rendered"), GRAMMAR)
def test_number_grammar(
    client: TestClient, literal: str, status: int, rendered: str | None
) -> None:
    reply = add(client, literal)
    assert reply.status_code == status, reply.text
    if rendered is None:
        assert reply.json()["error"] == "number_out_of_range"
        assert read_sum(client) == 0
        return
    assert f'"added": {rendered},' in reply.text
    assert f'"new_sum": {rendered},' in reply.text
    assert read_sum(client) == Decimal(rendered)


def test_decimal_sums_are_exact(client: TestClient) -> None:
    for _ in range(10):
        add(client, "0.1")
    assert '"sum": 1,' in client.get("/abacus/sum").text


def test_sum_pushed_past_its_bound_is_refused_and_changes_nothing(
    client: TestClient, redis_data: fakeredis.FakeRedis
) -> None:
    assert add(client, MAX).status_code == 200
    refused = add(client, TINY)
    assert refused.status_code == 422
    assert refused.json()["error"] == "sum_out_of_range"
    assert redis_data.get(SUM_KEY) == MAX.encode()
    assert add(client, "-1").status_code == 200, "a step back into bounds is fine"
    assert read_sum(client) == Decimal("9" * 29 + "8." + "9" * 18)


def test_sum_past_its_negative_bound_is_refused(client: TestClient) -> None:
    assert add(client, "-" + MAX).status_code == 200
    assert add(client, "-" + TINY).json()["error"] == "sum_out_of_range"
    assert read_sum(client) == Decimal("-" + MAX)


def test_sum_keeps_18_fraction_digits_exactly(client: TestClient) -> None:
    add(client, "1" + "0" * 29)
    add(client, TINY)
    assert f'"sum": 1{"0" * 29}.{"0" * 17}1,' in client.get("/abacus/sum").text


def test_charset_parameter_is_fine(client: TestClient) -> None:
    for content_type in ("application/json; charset=utf-8", "Application/JSON;charset=UTF-8"):
        reply = client.post(
            "/abacus/number", content='{"number": 2}', headers={"Content-Type": content_type}
        )
        assert reply.status_code == 200, reply.text
    assert read_sum(client) == 4


def test_a_repeated_idempotency_key_replays_the_first_response(client: TestClient) -> None:
    first = add(client, "5", **{"Idempotency-Key": "order-1234"})
    again = add(client, "5.0", **{"Idempotency-Key": "order-1234"})
    assert first.status_code == again.status_code == 200
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.text == first.text
    assert read_sum(client) == 5


def test_a_key_reused_with_another_number_is_refused(client: TestClient) -> None:
    add(client, "5", **{"Idempotency-Key": "order-1234"})
    reused = add(client, "6", **{"Idempotency-Key": "order-1234"})
    assert reused.status_code == 422
    assert reused.json()["error"] == "idempotency_key_reused"
    assert read_sum(client) == 5


RETRY_KEY = {"X-Abacus-Retry-Key": "0123456789abcdef0123456789abcdef"}
FROM_BALANCER = {"X-Abacus-Balancer-Secret": BALANCER_SECRET}
# The secret's own length and alphabet, one character off: only the exact secret is trusted.
WRONG_SECRET = {"X-Abacus-Balancer-Secret": BALANCER_SECRET[:-1] + "x"}


@pytest.mark.parametrize(("secret", "counted"), [(FROM_BALANCER, 1), ({}, 2), (WRONG_SECRET, 2)])
def test_the_retry_key_counts_only_with_the_balancers_secret(
    make_client: ClientFactory,
    balancer_settings: Settings,
    caplog: pytest.LogCaptureFixture,
    secret: dict[str, str],
    counted: int,
) -> None:
    # Any peer address: trust comes from the secret alone (a local process can bind any
    # 127.0.0.0/8 address, so an address proves nothing).
    client = make_client(balancer_settings, peer=("127.0.0.2", 4000))
    untrusted_before = sample("abacus_untrusted_retry_keys_total")
    first = add(client, "3", **RETRY_KEY, **secret)
    second = add(client, "3", **RETRY_KEY, **secret)
    assert first.status_code == second.status_code == 200
    assert read_sum(client) == 3 * counted, "a client cannot make two adds count as one"
    assert (second.headers.get("idempotent-replayed") == "true") is (counted == 1)
    untrusted = sample("abacus_untrusted_retry_keys_total") - untrusted_before
    assert untrusted == (0 if counted == 1 else 2), "each untrusted retry key is counted"


def test_an_untrusted_retry_key_is_logged_at_most_once_a_minute(
    make_client: ClientFactory,
    balancer_settings: Settings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(routes, "_untrusted_logged_at", -math.inf)
    client = make_client(balancer_settings)
    with caplog.at_level(logging.WARNING, logger="abacus.api"):
        for _ in range(3):
            assert add(client, "1", **RETRY_KEY, **WRONG_SECRET).status_code == 200
    warnings = [r for r in caplog.records if "without the balancer's secret" in r.getMessage()]
    assert len(warnings) == 1, "a misconfigured balancer must not flood the log"
    assert BALANCER_SECRET not in caplog.text


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        # Only this request carries the add and nothing was sent: "nothing changed" is true.
        ({}, "unavailable"),
        ({**FROM_BALANCER, **RETRY_KEY, "X-Abacus-Try": "first"}, "unavailable"),
        # Others may carry it (the client's duplicates, the node nginx gave up on, or carriers
        # under records this node cannot see) and no fence can be written while Redis is down.
        ({"Idempotency-Key": "k-1"}, "outcome_unknown"),
        ({**FROM_BALANCER, **RETRY_KEY, "X-Abacus-Try": "retry"}, "outcome_unknown"),
        ({**FROM_BALANCER, **RETRY_KEY}, "outcome_unknown"),
        ({**RETRY_KEY, "X-Abacus-Try": "first"}, "outcome_unknown"),
        ({**WRONG_SECRET, **RETRY_KEY, "X-Abacus-Try": "first"}, "outcome_unknown"),
    ],
)
def test_with_redis_down_only_a_sole_carrier_says_nothing_changed(
    make_client: ClientFactory,
    down_server: FakeServer,
    balancer_secret_file: Path,
    headers: dict[str, str],
    error: str,
) -> None:
    settings = make_settings(
        ABACUS_BALANCER_SECRET_FILE=str(balancer_secret_file), ABACUS_ADD_DEADLINE_MS="50"
    )
    client = make_client(settings, server=down_server)
    reply = add(client, "3", **headers)
    assert reply.status_code == 503, reply.text
    assert reply.json()["error"] == error


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST"])
@pytest.mark.parametrize("path", ["/abacus/sum/", "/abacus/number/", "/health/"])
def test_a_trailing_slash_is_not_found_never_a_redirect(
    client: TestClient, method: str, path: str
) -> None:
    # A name the node serves, on a port of the client's choosing: still no redirect.
    reply = client.request(method, path, headers={"Host": "localhost:8443"}, follow_redirects=False)
    assert reply.status_code == 404, reply.text
    assert reply.json()["error"] == "not_found"
    assert "location" not in reply.headers


def test_read_sum_shape(client: TestClient, redis_data: fakeredis.FakeRedis) -> None:
    redis_data.set(SUM_KEY, "7")
    reply = client.get("/abacus/sum")
    assert reply.status_code == 200
    assert set(reply.json()) == {"sum", "timestamp", "node_id"}
    assert reply.text.startswith('{"sum": 7, '), "an integral sum is a JSON integer"
    assert reply.json()["node_id"] == NODE_ID
    assert_timestamp(reply.json()["timestamp"])


def test_a_sum_never_written_is_zero(client: TestClient) -> None:
    assert read_sum(client) == 0


def test_a_read_survives_redis_closing_the_pooled_connection(
    client: TestClient, redis_data: fakeredis.FakeRedis
) -> None:
    redis_data.set(SUM_KEY, "4")
    assert read_sum(client) == 4  # leaves a connection in the pool
    failures = REGISTRY.get_sample_value("abacus_redis_errors_total", {"operation": "read"}) or 0
    # As a Redis restart would: the pooled connection is dead when next used.
    assert redis_data.client_kill_filter(_type="normal", skipme=True) >= 1
    assert read_sum(client) == 4, "a read is repeated on a fresh connection"
    after = REGISTRY.get_sample_value("abacus_redis_errors_total", {"operation": "read"})
    assert after == failures + 1


def test_read_sum_when_redis_is_down(make_client: ClientFactory, down_server: FakeServer) -> None:
    reply = make_client(server=down_server).get("/abacus/sum")
    assert reply.status_code == 503
    assert reply.json() == {
        "error": "unavailable",
        "message": "Redis is unavailable; the sum cannot be read now",
    }
    assert reply.headers["retry-after"] == "1"


def test_reset_shape_and_effect(
    client: TestClient, redis_data: fakeredis.FakeRedis, caplog: pytest.LogCaptureFixture
) -> None:
    add(client, "12.5")
    reply = client.delete("/abacus/sum", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert reply.status_code == 200
    assert set(reply.json()) == {"message", "timestamp", "node_id"}
    assert reply.json()["message"] == "Sum successfully reset to 0"
    assert reply.json()["node_id"] == NODE_ID
    assert_timestamp(reply.json()["timestamp"])
    assert redis_data.get(SUM_KEY) == b"0"
    (logged,) = [r for r in caplog.records if r.name == "abacus.api"]
    assert logged.levelno == logging.WARNING
    assert logged.__dict__["replaced_sum"] == "12.5", "the log keeps the sum that was reset"


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        (None, 401, "unauthorized"),
        ("Basic YWRtaW46YWRtaW4=", 401, "unauthorized"),
        ("Bearer ", 401, "unauthorized"),
        (ADMIN_TOKEN, 401, "unauthorized"),
        ("Bearer guess", 403, "forbidden"),
        (f"Bearer {ADMIN_TOKEN}x", 403, "forbidden"),
    ],
)
def test_reset_needs_the_token(
    client: TestClient,
    redis_data: fakeredis.FakeRedis,
    authorization: str | None,
    status: int,
    code: str,
) -> None:
    redis_data.set(SUM_KEY, "11")
    headers = {"Authorization": authorization} if authorization is not None else {}
    reply = client.delete("/abacus/sum", headers=headers)
    assert reply.status_code == status
    assert reply.json()["error"] == code
    assert (reply.headers.get("www-authenticate") == 'Bearer realm="abacus"') is (status == 401)
    assert redis_data.get(SUM_KEY) == b"11", "a refused reset changes nothing"


def test_the_bearer_scheme_is_case_insensitive(client: TestClient) -> None:
    reply = client.delete("/abacus/sum", headers={"Authorization": f"bearer  {ADMIN_TOKEN} "})
    assert reply.status_code == 200


def test_without_an_admin_token_anyone_can_reset(
    make_client: ClientFactory, redis_data: fakeredis.FakeRedis
) -> None:
    redis_data.set(SUM_KEY, "3")
    client = make_client(make_settings(ABACUS_ADMIN_TOKEN=""))
    assert client.delete("/abacus/sum").status_code == 200
    assert redis_data.get(SUM_KEY) == b"0"


def test_reset_when_redis_is_down(make_client: ClientFactory, down_server: FakeServer) -> None:
    reply = make_client(server=down_server).delete(
        "/abacus/sum", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert reply.status_code == 503
    assert reply.json()["error"] == "unavailable"
    assert reply.json()["message"] == "Redis is unavailable; the sum was not reset"


def test_health_shape(client: TestClient, redis_data: fakeredis.FakeRedis) -> None:
    add(client, "42")
    reply = client.get("/health")
    assert reply.status_code == 200
    assert reply.json() == {
        "status": "healthy",
        "node_id": NODE_ID,
        "redis_connected": True,
        "current_sum": 42,
        "stats": INFO_STATS,
        # fakeredis reports maxmemory 0 (no limit), so there is no budget to use up.
        "memory_used_ratio": None,
        "keyed_adds": "accepted",
    }
    # A real write, so that a Redis that takes no writes makes the node unhealthy.
    assert 0 < redis_data.pttl(f"{SUM_KEY}:health:{NODE_ID}") <= 60_000


def test_health_when_redis_is_down(make_client: ClientFactory, down_server: FakeServer) -> None:
    reply = make_client(server=down_server).get("/health")
    assert reply.status_code == 503
    assert reply.json() == {
        "status": "unhealthy",
        "node_id": NODE_ID,
        "redis_connected": False,
        "current_sum": None,
        "stats": None,
        "memory_used_ratio": None,
        "keyed_adds": "accepted",
    }
    assert reply.headers["retry-after"] == "1"


def test_health_when_redis_answers_with_an_error(
    make_client: ClientFactory, redis_server: FakeServer
) -> None:
    # Plain fakeredis answers INFO with an error reply, as a Redis that refuses a command would.
    client = make_client(make_pool=fake_pools(redis_server, FakeAsyncRedisConnection))
    reply = client.get("/health")
    assert reply.status_code == 503
    assert reply.json()["status"] == "unhealthy"


def test_livez_answers_without_redis(make_client: ClientFactory, down_server: FakeServer) -> None:
    # The orchestrators' liveness check: a Redis outage must not restart every node.
    client = make_client(server=down_server)
    assert client.get("/health").status_code == 503
    reply = client.get("/livez")
    assert reply.status_code == 200
    assert reply.json() == {"status": "alive", "node_id": NODE_ID}
    assert reply.headers["x-node-id"] == NODE_ID


# tests/test_api.py's table, and tests/test_hostile.py's rows a node answers itself.
@pytest.mark.parametrize(
    ("method", "path", "status", "code", "allow"),
    [
        ("GET", "/nope", 404, "not_found", None),
        ("GET", "/admin", 404, "not_found", None),
        ("GET", "/abacus/number", 405, "method_not_allowed", "POST"),
        ("PUT", "/abacus/number", 405, "method_not_allowed", "POST"),
        ("PUT", "/abacus/sum", 405, "method_not_allowed", "GET, HEAD, DELETE"),
        ("PATCH", "/abacus/sum", 405, "method_not_allowed", "GET, HEAD, DELETE"),
        ("TRACE", "/abacus/sum", 405, "method_not_allowed", "GET, HEAD, DELETE"),
        ("POST", "/health", 405, "method_not_allowed", "GET, HEAD"),
        ("POST", "/livez", 405, "method_not_allowed", "GET, HEAD"),
    ],
)
def test_unknown_path_and_wrong_method(
    client: TestClient, *, method: str, path: str, status: int, code: str, allow: str | None
) -> None:
    reply = client.request(method, path)
    assert reply.status_code == status
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["error"] == code
    assert path in reply.json()["message"]
    assert set(reply.headers.get("allow", "").split(", ")) == set((allow or "").split(", "))
    assert reply.headers["x-node-id"] == NODE_ID
    assert reply.headers.get_list("x-request-id")


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    client.get("/abacus/sum")
    reply = client.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=")
    assert 'abacus_http_requests_total{method="GET",route="/abacus/sum",status="200"}' in reply.text
    assert "abacus_http_request_duration_seconds_bucket" in reply.text


def test_openapi_document_is_served(client: TestClient) -> None:
    reply = client.get("/openapi.json")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == json.loads(json.dumps(openapi.DOCUMENT))


# ----- the key budget ---------------------------------------------------------------------


def keyed(key: str, **headers: str) -> dict[str, str]:
    return {"Idempotency-Key": key, **headers}


def test_past_its_quota_a_client_s_new_keys_get_429_and_nobody_else_notices(
    make_client: ClientFactory, redis_data: fakeredis.FakeRedis
) -> None:
    settings = make_settings(ABACUS_KEYS_PER_CLIENT="2", ABACUS_IDEMPOTENCY_TTL_S="3600")
    client = make_client(settings, peer=("203.0.113.7", 50000))
    other = make_client(settings, peer=("198.51.100.4", 50000))
    assert add(client, 1, **keyed("a1")).status_code == 200
    assert add(client, 2, **keyed("a2")).status_code == 200
    refused = add(client, 4, **keyed("a3"))
    assert refused.status_code == 429
    assert refused.json()["error"] == "key_quota_exhausted"
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert refused.headers["x-node-id"] == NODE_ID
    # Its keyless adds, its replays, its reads and resets, and other clients: as before.
    assert add(client, 8).status_code == 200
    replay = add(client, 1, **keyed("a1"))
    assert replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert add(other, 16, **keyed("b1")).status_code == 200
    assert read_sum(client) == 27, "nothing refused counted"
    assert redis_data.get("abacus:sum:idem:a3") is None, "and nothing of it was stored"
    counter = "abacus:sum:quota:203.0.113.7"
    assert redis_data.get(counter) == b"2"
    assert 0 < redis_data.ttl(counter) <= 3600, "its window: from its first new key, one TTL"


def test_x_real_ip_names_the_client_only_when_the_balancer_sent_the_request(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # routes._from_balancer is the one trust predicate; a header stands in for it here, so this
    # holds whatever the balancer's proof is (an address today).
    monkeypatch.setattr(
        routes,
        "_from_balancer",
        lambda request, settings: request.headers.get("x-test-balancer") == "yes",
    )
    client = make_client(make_settings(ABACUS_KEYS_PER_CLIENT="1"), peer=("127.0.0.2", 50000))

    def via_balancer(key: str, address: str) -> dict[str, str]:
        return keyed(key, **{"x-test-balancer": "yes", "X-Real-IP": address})

    assert add(client, 1, **via_balancer("k1", "198.51.100.1")).status_code == 200
    assert add(client, 2, **via_balancer("k2", "198.51.100.2")).status_code == 200
    over = add(client, 4, **via_balancer("k3", "198.51.100.1"))
    assert over.status_code == 429
    # Not from the balancer: X-Real-IP is only what the sender claims; the peer is the client.
    assert add(client, 8, **keyed("k4", **{"X-Real-IP": "198.51.100.3"})).status_code == 200
    forged = add(client, 16, **keyed("k5", **{"X-Real-IP": "198.51.100.4"}))
    assert forged.status_code == 429, "a new address per request buys no new quota"
    assert read_sum(client) == 11


def test_health_shows_memory_use_and_whether_new_keys_are_paused(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only /health reads INFO after the first poll here, so each step below is what it set.
    monkeypatch.setattr(memory_watch, "POLL_INTERVAL_S", 3600.0)
    monkeypatch.setitem(INFO_MEMORY, "maxmemory", 10_000_000)
    monkeypatch.setitem(INFO_MEMORY, "used_memory", 5_000_000)
    client = make_client(make_settings(ABACUS_KEY_STORE_LIMIT="0.8"))
    healthy = client.get("/health")
    assert healthy.json()["memory_used_ratio"] == 0.5
    assert healthy.json()["keyed_adds"] == "accepted"

    monkeypatch.setitem(INFO_MEMORY, "used_memory", 9_000_000)
    paused = client.get("/health")
    assert paused.status_code == 200, "paused keys are not a node down"
    assert paused.json()["status"] == "healthy"
    assert paused.json()["memory_used_ratio"] == 0.9
    assert paused.json()["keyed_adds"] == "paused"
    refused = add(client, 1, **keyed("k1"))
    assert refused.status_code == 503
    assert refused.json()["error"] == "key_store_full"
    assert int(refused.headers["retry-after"]) > 1
    assert add(client, 2).status_code == 200, "keyless adds go on in the headroom"
    reset = client.delete("/abacus/sum", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert reset.status_code == 200, "resets are never refused"

    monkeypatch.setitem(INFO_MEMORY, "maxmemory", 0)
    unlimited = client.get("/health").json()
    assert (unlimited["memory_used_ratio"], unlimited["keyed_adds"]) == (None, "accepted")
    taken = add(client, 1, **keyed("k1"))
    assert taken.status_code == 200
    assert "idempotent-replayed" not in taken.headers, "the refused add had not counted"
    assert read_sum(client) == 1
