"""Every endpoint's shape and each kind of error, through the balancer."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

import pytest

from abacus.local_stack import LocalStack
from tests.api_client import ADMIN_TOKEN, Api
from tests.request_tables import MALFORMED as ALL_MALFORMED
from tests.request_tables import one_per_code
from tests.waiting import wait_for_log

pytestmark = pytest.mark.stack

NODE_IDS = {"node-1", "node-2", "node-3"}


def assert_timestamp(value: str) -> None:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None, "timestamps carry their UTC offset"


def assert_ids(headers: object, *, node: bool = True) -> None:
    assert hasattr(headers, "get")
    request_id = headers.get("X-Request-ID")
    assert request_id
    assert "," not in request_id, "exactly one X-Request-ID"
    if node:
        assert headers.get("X-Node-Id") in NODE_IDS


def test_add_returns_new_sum_and_exact_decimals(api: Api) -> None:
    first = api.add("0.1")
    assert first.status == 200
    assert set(first.body) == {"new_sum", "added", "timestamp", "node_id"}
    assert first.body["new_sum"] == Decimal("0.1")
    second = api.add("0.2")
    assert second.status == 200
    assert '"new_sum": 0.3,' in second.text, "0.1 + 0.2 is exactly 0.3, written plainly"
    assert second.body["node_id"] in NODE_IDS
    assert second.headers["X-Node-Id"] == second.body["node_id"]
    assert_timestamp(second.body["timestamp"])
    assert_ids(second.headers)
    assert api.sum() == Decimal("0.3")


def test_negative_and_decimal_numbers(api: Api) -> None:
    for number in ("-5", "2.5", "-0.25", "1e2", "-1.5E1"):
        assert api.add(number).status == 200
    assert api.sum() == Decimal("-5") + Decimal("2.5") - Decimal("0.25") + 100 - 15
    assert api.request("GET", "/abacus/sum").text.startswith('{"sum": 82.25,')


def test_read_sum_shape(api: Api) -> None:
    api.add(7)
    reply = api.request("GET", "/abacus/sum")
    assert reply.status == 200
    assert set(reply.body) == {"sum", "timestamp", "node_id"}
    assert reply.body["sum"] == 7
    assert '"sum": 7,' in reply.text, "an integral sum is a JSON integer"
    assert_timestamp(reply.body["timestamp"])
    assert_ids(reply.headers)


def test_reset_shape_and_effect(api: Api) -> None:
    api.add(3)
    reply = api.reset()
    assert reply.status == 200
    assert reply.body["message"] == "Sum successfully reset to 0"
    assert reply.body["node_id"] in NODE_IDS
    assert_timestamp(reply.body["timestamp"])
    assert api.sum() == 0


def test_reset_needs_the_token(api: Api) -> None:
    api.add(11)
    missing = api.reset(token=None)
    assert missing.status == 401
    assert missing.body["error"] == "unauthorized"
    wrong = api.reset(token="not-the-token")
    assert wrong.status == 403
    assert wrong.body["error"] == "forbidden"
    assert api.sum() == 11, "a refused reset changes nothing"


def test_reset_is_logged_with_the_sum_it_replaced(api: Api, stack: LocalStack) -> None:
    api.add("12.5")
    reply = api.reset()
    node = reply.body["node_id"]
    assert wait_for_log(stack.log_path(node), '"replaced_sum": "12.5"')


def test_health_shape(api: Api) -> None:
    api.add(42)
    reply = api.request("GET", "/health")
    assert reply.status == 200
    assert reply.body["status"] == "healthy"
    assert reply.body["redis_connected"] is True
    assert reply.body["current_sum"] == 42
    assert reply.body["node_id"] in NODE_IDS
    stats = reply.body["stats"]
    assert set(stats) == {"connected_clients", "total_commands_processed", "used_memory_human"}
    assert stats["connected_clients"] >= 1
    assert re.fullmatch(r"[0-9.]+[BKMG]", stats["used_memory_human"])


def test_request_id_from_the_balancer_reaches_the_client_once(api: Api, stack: LocalStack) -> None:
    reply = api.add(1)
    request_id = reply.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id), "nginx's $request_id"
    assert wait_for_log(stack.log_path(reply.body["node_id"]), request_id), (
        "the node logs the id the client saw"
    )


def test_node_called_directly_makes_its_own_request_id(stack: LocalStack) -> None:
    direct = Api(f"http://127.0.0.1:{stack.config.node_port}")
    reply = direct.request("GET", "/abacus/sum")
    assert reply.status == 200
    assert reply.headers["X-Node-Id"] == "node-1"
    assert re.fullmatch(r"[0-9a-f]{32}", reply.headers["X-Request-ID"])


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nope", 404, "not_found"),
        ("GET", "/abacus/number", 405, "method_not_allowed"),
        ("PUT", "/abacus/sum", 405, "method_not_allowed"),
        ("POST", "/health", 405, "method_not_allowed"),
    ],
)
def test_unknown_path_and_wrong_method(
    api: Api, method: str, path: str, status: int, code: str
) -> None:
    reply = api.request(method, path)
    assert reply.status == status
    assert reply.body["error"] == code
    assert reply.body["message"]
    assert_ids(reply.headers)


def test_metrics_are_not_exposed_by_the_balancer(api: Api, stack: LocalStack) -> None:
    reply = api.request("GET", "/metrics")
    assert reply.status == 404
    assert reply.body["error"] == "not_found"
    direct = Api(f"http://127.0.0.1:{stack.config.node_port}").request("GET", "/metrics")
    assert direct.status == 200
    assert "abacus_http_requests_total" in direct.text


# Each row: body, extra headers, status, error code. None of them may change the sum.
# Every row runs in process (tests/unit/test_add_request.py); through nginx, one of each code.
MALFORMED = one_per_code(ALL_MALFORMED)


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    MALFORMED,
    ids=[f"{i}-{row[3]}" for i, row in enumerate(MALFORMED)],
)
def test_malformed_requests_change_nothing(
    api: Api, body: str | bytes, headers: dict[str, str], status: int, code: str
) -> None:
    api.add(5)
    reply = api.request("POST", "/abacus/number", data=body, headers=headers)
    assert reply.status == status, reply.text
    assert reply.body["error"] == code
    assert reply.body["message"]
    assert "Traceback" not in reply.text
    assert_ids(reply.headers, node=status != 413)
    assert api.sum() == 5


def test_charset_parameter_is_fine(api: Api) -> None:
    for content_type in ("application/json; charset=utf-8", "Application/JSON;charset=UTF-8"):
        reply = api.request(
            "POST", "/abacus/number", data='{"number": 2}', headers={"Content-Type": content_type}
        )
        assert reply.status == 200, reply.text
    assert api.sum() == 4


def test_a_trailing_slash_is_not_found_and_never_redirects(api: Api) -> None:
    # A name the service serves, with a port of the client's choosing.
    reply = api.request("GET", "/abacus/sum/", headers={"Host": "localhost:8443"})
    assert reply.status == 404, reply.text
    assert reply.body["error"] == "not_found"
    assert "Location" not in reply.headers


def test_dns_rebinding_cannot_reset_add_or_read(api: Api, stack: LocalStack) -> None:
    """A page on attacker.example, its name pointed at 127.0.0.1, sends its own name as Host:
    through the balancer and straight to a node, nothing happens."""
    assert api.add(5).status == 200
    node = Api(f"http://127.0.0.1:{stack.config.node_port}")
    rebound = {"Host": "attacker.example:8080", "Authorization": f"Bearer {ADMIN_TOKEN}"}
    for client in (api, node):
        for method, path, data in (
            ("DELETE", "/abacus/sum", None),
            ("POST", "/abacus/number", '{"number": 1}'),
            ("GET", "/abacus/sum", None),
        ):
            headers = {**rebound, "Content-Type": "application/json"}
            reply = client.request(method, path, data=data, headers=headers)
            assert reply.status == 421, reply.text
            assert reply.body["error"] == "misdirected_request"
            assert reply.headers["X-Request-ID"]
    assert api.sum() == 5
    # The names a user's own tools send are served.
    for host in ("localhost:8080", "127.0.0.1", "[::1]:8080"):
        assert api.request("GET", "/abacus/sum", headers={"Host": host}).status == 200


def test_an_exponent_beyond_any_decimal_is_out_of_range(api: Api) -> None:
    reply = api.add("1e1000000000000000000")
    assert reply.status == 422, reply.text
    assert reply.body["error"] == "number_out_of_range"
    assert api.sum() == 0
