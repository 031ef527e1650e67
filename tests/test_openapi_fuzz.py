"""Property-based fuzzing of every endpoint, held to the OpenAPI document.

Hypothesis sends well-formed, malformed and hostile requests through the balancer. Every response
must be one the document lists for that path and method, with a body that matches its schema, no
5xx, and the sum must move exactly by the adds that were accepted (replays excluded).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abacus.local_stack import LocalStack
from abacus.node import amounts
from abacus.node.openapi import DOCUMENT
from tests.api_client import ADMIN_TOKEN, Api

pytestmark = pytest.mark.stack

CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "",
]

decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str)
bounded = st.decimals(
    min_value=Decimal("-1e6"), max_value=Decimal("1e6"), places=6, allow_nan=False
).map(str)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | bounded.map(Decimal),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def encode(value: Any) -> str:
    return json.dumps(value, default=str)


bodies = st.one_of(
    bounded.map(lambda n: f'{{"number": {n}}}'),
    decimals.map(lambda n: f'{{"number": {n}}}'),
    json_values.map(encode),
    st.dictionaries(st.sampled_from(["number", "Number", "extra"]), json_values, max_size=2).map(
        encode
    ),
    st.text(max_size=40),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)
# What an HTTP client can put in a header: Latin-1 without control or space characters.
HEADER_CHARS = [chr(c) for c in (*range(0x21, 0x7F), *range(0xA1, 0x100))]
keys = (
    st.none()
    | st.text(alphabet=HEADER_CHARS, max_size=12)
    | st.from_regex(r"[!-~]{1,20}", fullmatch=True)
)

operations = st.one_of(
    st.tuples(
        st.just("POST"), st.just("/abacus/number"), bodies, st.sampled_from(CONTENT_TYPES), keys
    ),
    st.tuples(
        st.sampled_from(["GET", "DELETE", "PUT", "PATCH"]),
        st.just("/abacus/sum"),
        st.just(""),
        st.just(""),
        st.none(),
    ),
    st.tuples(
        st.sampled_from(["GET", "POST"]),
        st.sampled_from(["/health", "/livez", "/openapi.json", "/nope"]),
        st.just(""),
        st.just(""),
        st.none(),
    ),
)


def response_schema(path: str, method: str, status: int) -> dict[str, Any] | None:
    operation = DOCUMENT["paths"].get(path, {}).get(method.lower())
    documented = operation["responses"] if operation else {}
    if str(status) not in documented:
        # Unknown paths and methods: the shared 404 / 405 error shape.
        assert status in (404, 405), f"{method} {path} -> {status} is not documented"
        return {"$ref": "#/components/schemas/Error"}
    content = documented[str(status)].get("content", {}).get("application/json")
    return content["schema"] if content else None


class Model:
    expected = Decimal(0)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operation=operations)
def run_one(stack: LocalStack, api: Api, operation: tuple[str, str, str, str, str | None]) -> None:
    method, path, body, content_type, key = operation
    headers = {"Content-Type": content_type} if content_type else {}
    if key is not None:
        headers["Idempotency-Key"] = key
    if method == "DELETE":
        headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    reply = api.session.request(
        method,
        api.url + path,
        data=body.encode("utf-8", "surrogatepass") if body else None,
        headers=headers,
        timeout=15,
    )
    assert reply.status_code < 500, reply.text
    schema = response_schema(path, method, reply.status_code)
    if schema is not None:
        document = json.loads(reply.text, parse_float=Decimal)
        jsonschema.validate(
            document,
            {**schema, "components": DOCUMENT["components"]},
            cls=jsonschema.Draft202012Validator,
        )
    replayed = reply.headers.get("Idempotent-Replayed") == "true"
    if path == "/abacus/number" and reply.status_code == 200 and not replayed:
        # Exact, as the service adds (the default context would round to 28 digits).
        added = json.loads(reply.text, parse_float=Decimal)["added"]
        Model.expected = amounts.CONTEXT.add(Model.expected, added)
    if method == "DELETE" and reply.status_code == 200:
        Model.expected = Decimal(0)
    assert api.sum() == Model.expected, "the sum moves only by accepted adds"


def test_fuzz_every_endpoint_against_the_openapi_document(stack: LocalStack) -> None:
    api = Api(stack.config.url)
    assert api.reset().status == 200
    Model.expected = Decimal(0)
    run_one(stack, api)
    api.close()
