"""Hostile requests through the balancer: each gets its documented status, nothing changes,
and the nodes stay healthy."""

from __future__ import annotations

import json
import time

import pytest

from abacus.local_stack import LocalStack
from abacus.local_stack.stack import health_status
from tests.api_client import Api
from tests.conftest import StackFactory
from tests.raw_http import exchange

pytestmark = pytest.mark.stack

JSON = "Content-Type: application/json\r\n"
BODY_TIMEOUT_S = 1.0


def request(method: str, path: str, body: bytes = b"", headers: str = JSON) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode("latin-1") + body


def add(body: bytes | str, headers: str = JSON) -> bytes:
    return request(
        "POST", "/abacus/number", body.encode() if isinstance(body, str) else body, headers
    )


HOSTILE: list[tuple[str, bytes, int, str | None]] = [
    ("huge body", add(b'{"number": 1' + b"0" * 100_000 + b"}"), 413, "body_too_large"),
    ("body just over 1 KiB", add(b" " * 1020 + b'{"number": 1}'), 413, "body_too_large"),
    (
        "huge body without length",
        b"POST /abacus/number HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n"
        + b" " * 2048
        + b"\r\n0\r\n\r\n",
        413,
        "body_too_large",
    ),
    ("deep nesting", add("[" * 1000), 400, "invalid_json"),
    ("deep valid nesting", add("[" * 500 + "]" * 500), 422, "invalid_body"),
    ("1000-digit number", add('{"number": ' + "9" * 1000 + "}"), 422, "number_out_of_range"),
    ("10,000-digit number", add('{"number": ' + "9" * 10_000 + "}"), 413, "body_too_large"),
    ("1000 fraction digits", add('{"number": 0.' + "1" * 1000 + "}"), 422, "number_out_of_range"),
    ("huge exponent", add('{"number": 1e999999999999}'), 422, "number_out_of_range"),
    ("tiny exponent", add('{"number": 1e-999999999999}'), 422, "number_out_of_range"),
    ("arabic-indic digits", add('{"number": \u0661\u0662}'), 400, "invalid_json"),
    ("fullwidth digits", add('{"number": \uff11\uff12}'), 400, "invalid_json"),
    ("superscript digit", add('{"number": \u00b2}'), 400, "invalid_json"),
    ("duplicate keys", add('{"number": 1, "number": 1}'), 400, "invalid_json"),
    ("NaN", add('{"number": NaN}'), 400, "invalid_json"),
    ("Infinity", add('{"number": Infinity}'), 400, "invalid_json"),
    ("byte order mark", add(b'\xef\xbb\xbf{"number": 1}'), 400, "invalid_json"),
    ("invalid UTF-8", add(b'{"number": 1, "\xc3\x28": 2}'), 400, "invalid_json"),
    ("NUL byte", add(b'{"number": 1}\x00'), 400, "invalid_json"),
    ("number as string", add('{"number": "12"}'), 422, "invalid_number"),
    ("boolean", add('{"number": true}'), 422, "invalid_number"),
    ("extra field", add('{"number": 1, "admin": true}'), 422, "invalid_body"),
    (
        "form post",
        add("number=1", "Content-Type: application/x-www-form-urlencoded\r\n"),
        415,
        "unsupported_media_type",
    ),
    (
        "text/plain cross-site",
        add('{"number": 1}', "Content-Type: text/plain\r\n"),
        415,
        "unsupported_media_type",
    ),
    # Bytes that reach a node's HTTP parser through nginx: its 400 is JSON too, and nginx's
    # request id is on it; a method no route has is refused by nginx itself.
    ("unknown method", request("FOO", "/abacus/sum", headers=""), 405, "method_not_allowed"),
    ("byte 0xff in the path", request("GET", "/abacus/\xff", headers=""), 400, "bad_request"),
    (
        "byte 0x01 in a header",
        add('{"number": 1}', JSON + "X-Note: a\x01b\r\n"),
        400,
        "bad_request",
    ),
    (
        "multipart",
        add("--x\r\n", "Content-Type: multipart/form-data; boundary=x\r\n"),
        415,
        "unsupported_media_type",
    ),
    ("no content type", add('{"number": 1}', ""), 415, "unsupported_media_type"),
    (
        "control chars in key",
        add('{"number": 1}', JSON + "Idempotency-Key: a\tb\r\n"),
        400,
        "invalid_idempotency_key",
    ),
    (
        "too long key",
        add('{"number": 1}', JSON + f"Idempotency-Key: {'k' * 300}\r\n"),
        400,
        "invalid_idempotency_key",
    ),
    (
        "two keys",
        add('{"number": 1}', JSON + "Idempotency-Key: a\r\nIdempotency-Key: b\r\n"),
        400,
        "invalid_idempotency_key",
    ),
    (
        "oversized header",
        add('{"number": 1}', JSON + f"X-Junk: {'j' * 10_000}\r\n"),
        431,
        "header_too_large",
    ),
    ("oversized URL", request("GET", "/abacus/sum?" + "q" * 10_000), 414, "uri_too_long"),
    (
        "PUT on number",
        request("PUT", "/abacus/number", b'{"number": 1}'),
        405,
        "method_not_allowed",
    ),
    ("PATCH on sum", request("PATCH", "/abacus/sum"), 405, "method_not_allowed"),
    ("TRACE", request("TRACE", "/abacus/sum"), 405, "method_not_allowed"),
    ("path traversal", request("GET", "/abacus/../../etc/passwd"), 400, "bad_request"),
    ("dot segments", request("GET", "/abacus/../health/../metrics"), 404, "not_found"),
    ("unknown path", request("GET", "/admin"), 404, "not_found"),
    ("metrics through the balancer", request("GET", "/metrics"), 404, "not_found"),
    ("reset without token", request("DELETE", "/abacus/sum"), 401, "unauthorized"),
    (
        "reset with basic auth",
        request("DELETE", "/abacus/sum", headers="Authorization: Basic YWRtaW46YWRtaW4=\r\n"),
        401,
        "unauthorized",
    ),
    (
        "reset with wrong token",
        request("DELETE", "/abacus/sum", headers="Authorization: Bearer guess\r\n"),
        403,
        "forbidden",
    ),
    (
        "garbage request line",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        400,
        "bad_request",
    ),
]


@pytest.mark.parametrize(
    ("payload", "status", "code"), [row[1:] for row in HOSTILE], ids=[row[0] for row in HOSTILE]
)
def test_hostile_request(
    api: Api, stack: LocalStack, payload: bytes, status: int, code: str | None
) -> None:
    api.add(17)
    reply = exchange(stack.config.port, payload)
    assert reply.status == status, reply.head
    body = json.loads(reply.body)
    assert body["error"] == code
    assert body["message"]
    assert reply.head.lower().count("x-request-id:") == 1, "the balancer's id, exactly once"
    assert "traceback" not in reply.body.decode("utf-8", "replace").lower()
    assert api.sum() == 17, "nothing changed"
    for port in stack.config.node_ports:
        assert health_status(port) == 200


def test_slow_body_is_cut_off_and_changes_nothing(make_stack: StackFactory) -> None:
    # A short client body timeout of the stack's own (10 s by default): the test waits for it.
    stack = make_stack(nodes=1, client_body_timeout_s=BODY_TIMEOUT_S)
    api = Api(stack.config.url)
    api.add(3)
    started = time.monotonic()
    partial = request("POST", "/abacus/number", b'{"number": 100}')[:-8]
    reply = exchange(stack.config.port, partial, timeout=30)
    waited = time.monotonic() - started
    assert reply.status is None, "the balancer closes a connection whose body stalls"
    assert BODY_TIMEOUT_S <= waited < BODY_TIMEOUT_S + 10, f"cut off after {waited:.1f} s"
    assert api.sum() == 3
