"""`POST /abacus/number` request checks, in process: every malformed or hostile request the real
stack's tables send (tests/test_api.py, tests/test_hostile.py) gets its status and code, in the
order of docs/api.md's error table (first row wins), and changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import fakeredis
import pytest
from starlette.requests import Request
from starlette.testclient import TestClient
from starlette.types import Message

from abacus.node.add_request import AddRequest, read_add_request
from abacus.node.errors import ApiError
from tests.request_tables import JSON, MALFORMED, Body, Headers
from tests.unit.conftest import NODE_ID, SUM_KEY


def chunked(body: bytes, size: int = 512) -> Iterator[bytes]:
    """A body sent without Content-Length, as a client streaming it would."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.fixture
def refusing_client(client: TestClient, redis_data: fakeredis.FakeRedis) -> TestClient:
    redis_data.set(SUM_KEY, "5")
    return client


def assert_refused(
    reply_status: int, reply: dict[str, str], status: int, code: str, data: fakeredis.FakeRedis
) -> None:
    assert (reply_status, reply["error"]) == (status, code)
    assert reply["message"]
    assert data.keys("*") == [SUM_KEY.encode()], "no commit record was written"
    assert data.get(SUM_KEY) == b"5", "the sum did not change"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    MALFORMED,
    ids=[f"{i}-{row[3]}" for i, row in enumerate(MALFORMED)],
)
def test_malformed_requests_change_nothing(
    refusing_client: TestClient,
    redis_data: fakeredis.FakeRedis,
    *,
    body: Body,
    headers: Headers,
    status: int,
    code: str,
) -> None:
    reply = refusing_client.post("/abacus/number", content=body, headers=headers)
    assert_refused(reply.status_code, reply.json(), status, code, redis_data)
    assert reply.headers["content-type"] == "application/json"
    assert "Traceback" not in reply.text
    assert reply.headers.get_list("x-request-id")
    assert reply.headers["x-node-id"] == NODE_ID


def test_a_streamed_body_over_1_kib_is_cut_off(
    refusing_client: TestClient, redis_data: fakeredis.FakeRedis
) -> None:
    # No Content-Length to go by: the node counts what arrives (test_hostile's chunked row).
    reply = refusing_client.post(
        "/abacus/number", content=chunked(b'{"number": 1}' + b" " * 2048), headers=JSON
    )
    assert "content-length" not in reply.request.headers
    assert_refused(reply.status_code, reply.json(), 413, "body_too_large", redis_data)


def test_a_streamed_body_within_1_kib_is_read_whole() -> None:
    body = b'{"number": ' + b" " * 1000 + b"-7.25}"
    assert len(body) <= 1024
    assert read(chunked(body, size=100), JSON).number == Decimal("-7.25")


def read(body: bytes | Iterator[bytes], headers: dict[str, str]) -> AddRequest:
    """`read_add_request` on a bare ASGI request: the parsing alone, without app or Redis."""
    chunks = [body] if isinstance(body, bytes) else list(body)

    async def receive() -> Message:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/abacus/number",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return asyncio.run(read_add_request(Request(scope, receive)))


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        'application/json; charset="utf-8"',
        " application/json ",
    ],
)
def test_json_content_types_are_accepted(content_type: str) -> None:
    assert read(b'{"number": 2}', {"Content-Type": content_type}).number == 2


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-16", "application/json; boundary=x", "json"]
)
def test_other_content_types_are_refused(content_type: str) -> None:
    with pytest.raises(ApiError) as refused:
        read(b'{"number": 2}', {"Content-Type": content_type})
    assert (refused.value.status, refused.value.code) == (415, "unsupported_media_type")


def test_the_number_comes_out_exact_and_the_key_as_sent() -> None:
    parsed = read(b'{"number": 0.10}', {**JSON, "Idempotency-Key": "order-1234~!"})
    assert parsed == AddRequest(number=Decimal("0.10"), idempotency_key="order-1234~!")


def test_negative_zero_comes_out_as_zero() -> None:
    assert not read(b'{"number": -0.0}', JSON).number.is_signed()


def test_no_key_is_none() -> None:
    assert read(b'{"number": 1}', JSON).idempotency_key is None


@pytest.mark.parametrize("key", ["k", "k" * 255, "!~", "\u00e9"])
def test_key_bounds(key: str) -> None:
    headers = {**JSON, "Idempotency-Key": key}
    if key.isascii():
        assert read(b'{"number": 1}', headers).idempotency_key == key
    else:
        with pytest.raises(ApiError, match="visible ASCII"):
            read(b'{"number": 1}', headers)


def test_a_declared_length_over_1_kib_is_refused_before_reading() -> None:
    async def receive() -> Message:
        raise AssertionError("the body was read although its declared length is too large")

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/abacus/number",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1025")],
    }
    with pytest.raises(ApiError) as refused:
        asyncio.run(read_add_request(Request(scope, receive)))
    assert (refused.value.status, refused.value.code) == (413, "body_too_large")
