"""The hand-written OpenAPI document against the app it describes: the same paths and methods,
every error code the app can answer, and real responses that fit its schemas."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fakeredis import FakeServer
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from starlette.routing import Route
from starlette.testclient import TestClient

from abacus.node import memory_watch, openapi
from abacus.node.errors import ErrorCode
from abacus.node.routes import ROUTES
from tests.unit.conftest import ADMIN_TOKEN, INFO_MEMORY, ClientFactory, make_settings

DOCUMENT = json.loads(json.dumps(openapi.DOCUMENT))
APP_SOURCE = Path(openapi.__file__).parent


def test_the_document_is_openapi_3_1_json() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    assert DOCUMENT == openapi.DOCUMENT, "nothing in it is lost in JSON"


def test_it_describes_exactly_the_app_s_routes() -> None:
    served = {
        route.path: {method.lower() for method in route.methods or ()} - {"head"}
        for route in ROUTES
        if isinstance(route, Route)
    }
    documented = {path: set(operations) for path, operations in DOCUMENT["paths"].items()}
    assert documented == served


def test_every_reference_resolves() -> None:
    refs = re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(DOCUMENT))
    assert refs
    assert set(refs) <= set(DOCUMENT["components"]["schemas"])


def test_the_document_lists_exactly_the_error_codes_of_the_enum() -> None:
    schema = DOCUMENT["components"]["schemas"]["Error"]["properties"]["error"]
    assert schema["enum"] == [code.value for code in ErrorCode]


def validator(path: str, method: str, status: int) -> Draft202012Validator:
    """The schema the document gives this response (the Error schema for undocumented paths)."""
    operation = DOCUMENT["paths"].get(path, {}).get(method.lower(), {})
    response = operation.get("responses", {}).get(str(status))
    schema: dict[str, Any] = {"$ref": "#/components/schemas/Error"}
    if response is not None:
        schema = response["content"]["application/json"]["schema"]
    return Draft202012Validator({**schema, "components": DOCUMENT["components"]})


AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
JSON = {"Content-Type": "application/json"}

EXCHANGES: list[tuple[str, str, dict[str, Any], int]] = [
    ("POST", "/abacus/number", {"content": '{"number": 0.1}', "headers": JSON}, 200),
    ("POST", "/abacus/number", {"content": "{", "headers": JSON}, 400),
    ("POST", "/abacus/number", {"content": b" " * 2000, "headers": JSON}, 413),
    ("POST", "/abacus/number", {"content": "{}"}, 415),
    ("POST", "/abacus/number", {"content": '{"number": 1e30}', "headers": JSON}, 422),
    ("GET", "/abacus/number", {}, 405),
    ("GET", "/abacus/sum", {}, 200),
    ("DELETE", "/abacus/sum", {"headers": AUTH}, 200),
    ("DELETE", "/abacus/sum", {}, 401),
    ("DELETE", "/abacus/sum", {"headers": {"Authorization": "Bearer no"}}, 403),
    ("GET", "/health", {}, 200),
    ("GET", "/livez", {}, 200),
    ("GET", "/nowhere", {}, 404),
    ("GET", "/openapi.json", {}, 200),
]


def assert_documented(reply: httpx2.Response, method: str, path: str, status: int) -> None:
    assert reply.status_code == status, reply.text
    errors = [e.message for e in validator(path, method, status).iter_errors(reply.json())]
    assert errors == [], reply.text
    assert {"x-node-id", "x-request-id"} <= set(reply.headers)


@pytest.mark.parametrize(("method", "path", "request_options", "status"), EXCHANGES)
def test_responses_fit_the_document(
    client: TestClient, method: str, path: str, request_options: dict[str, Any], status: int
) -> None:
    assert_documented(client.request(method, path, **request_options), method, path, status)


@pytest.mark.parametrize(("method", "path"), [("GET", "/abacus/sum"), ("GET", "/health")])
def test_redis_down_responses_fit_the_document(
    make_client: ClientFactory, method: str, path: str
) -> None:
    down = FakeServer()
    down.connected = False
    reply = make_client(server=down).request(method, path)
    assert_documented(reply, method, path, 503)
    assert reply.headers["retry-after"] == "1"


def test_livez_with_redis_down_fits_the_document(make_client: ClientFactory) -> None:
    down = FakeServer()
    down.connected = False
    assert_documented(make_client(server=down).get("/livez"), "GET", "/livez", 200)


def test_the_key_budget_s_refusals_fit_the_document(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory_watch, "POLL_INTERVAL_S", 3600.0)  # /health alone reads INFO
    monkeypatch.setitem(INFO_MEMORY, "maxmemory", 100)
    monkeypatch.setitem(INFO_MEMORY, "used_memory", 50)
    client = make_client(make_settings(ABACUS_KEYS_PER_CLIENT="1"))
    keyed = {**JSON, "Idempotency-Key": "k1"}
    assert client.post("/abacus/number", content='{"number": 1}', headers=keyed).is_success
    over = client.post(
        "/abacus/number", content='{"number": 1}', headers={**keyed, "Idempotency-Key": "k2"}
    )
    assert_documented(over, "POST", "/abacus/number", 429)
    assert over.json()["error"] == "key_quota_exhausted"
    assert "retry-after" in over.headers
    assert_documented(client.get("/health"), "GET", "/health", 200)

    monkeypatch.setitem(INFO_MEMORY, "used_memory", 95)
    other = make_client(peer=("198.51.100.4", 50000))  # a client with its quota untouched
    assert other.get("/health").json()["keyed_adds"] == "paused"
    full = other.post(
        "/abacus/number", content='{"number": 1}', headers={**keyed, "Idempotency-Key": "k3"}
    )
    assert_documented(full, "POST", "/abacus/number", 503)
    assert full.json()["error"] == "key_store_full"
    assert_documented(other.get("/health"), "GET", "/health", 200)


def test_the_document_is_a_valid_openapi_3_1_description() -> None:
    validate(DOCUMENT)


def test_the_validator_would_catch_a_broken_document() -> None:
    broken = json.loads(json.dumps(DOCUMENT))
    broken["paths"]["/abacus/sum"]["get"]["responses"] = "none"
    with pytest.raises(OpenAPIValidationError):
        validate(broken)
