"""The middleware around the whole app: request and node ids, access log, metrics, no tracebacks."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest
from prometheus_client import REGISTRY
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from abacus.node.logging_config import REQUEST_ID, ContextFilter
from abacus.node.request_context import RequestContextMiddleware

NODE = "node-x"
KNOWN = "/known"


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def boom(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("a bug with a secret in it")


def run(
    app: ASGIApp,
    *,
    path: str = KNOWN,
    headers: list[tuple[bytes, bytes]] | None = None,
    method: str = "GET",
    access_log: str = "all",
) -> list[Message]:
    """One request through the middleware; what it sent back."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    async def request() -> None:
        scope = {"type": "http", "method": method, "path": path, "headers": headers or []}
        middleware = RequestContextMiddleware(app, NODE, frozenset({KNOWN}), access_log=access_log)
        await middleware(scope, receive, send)
        assert REQUEST_ID.get() is None, "the request id does not leak into what runs next"

    asyncio.run(request())
    return sent


def response_headers(sent: list[Message]) -> Headers:
    (start,) = [m for m in sent if m["type"] == "http.response.start"]
    return Headers(raw=start["headers"])


def requests_total(route: str, status: str) -> float:
    labels = {"route": route, "method": "GET", "status": status}
    return REGISTRY.get_sample_value("abacus_http_requests_total", labels) or 0.0


@pytest.mark.parametrize(
    "incoming", ["0123456789abcdef0123456789abcdef", "abc.DEF_1-2", "x" * 64, "7"]
)
def test_a_valid_request_id_is_kept(incoming: str) -> None:
    headers = response_headers(run(ok, headers=[(b"x-request-id", incoming.encode())]))
    assert headers.getlist("x-request-id") == [incoming]


@pytest.mark.parametrize("incoming", ["", "x" * 65, "has space", "a,b", "caf\xe9", "<script>"])
def test_an_invalid_request_id_is_replaced(incoming: str) -> None:
    headers = response_headers(run(ok, headers=[(b"x-request-id", incoming.encode("latin-1"))]))
    (made,) = headers.getlist("x-request-id")
    assert re.fullmatch(r"[0-9a-f]{32}", made)


def test_a_missing_request_id_is_made_fresh_per_request() -> None:
    first, second = (response_headers(run(ok)).getlist("x-request-id") for _ in range(2))
    assert len(first) == len(second) == 1
    assert re.fullmatch(r"[0-9a-f]{32}", first[0])
    assert first != second


def test_the_ids_are_sent_exactly_once_whatever_the_app_sets() -> None:
    async def own_ids(scope: Scope, receive: Receive, send: Send) -> None:
        raw = [(b"x-request-id", b"from-the-app"), (b"x-node-id", b"someone-else")]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": b""})

    headers = response_headers(run(own_ids, headers=[(b"x-request-id", b"abc")]))
    assert headers.getlist("x-request-id") == ["abc"]
    assert headers.getlist("x-node-id") == [NODE]


def test_an_unhandled_exception_is_a_json_500_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = requests_total("other", "500")
    sent = run(boom, path="/elsewhere")
    headers = response_headers(sent)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [500]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert json.loads(body) == {"error": "internal_error", "message": "internal error"}
    assert b"secret" not in body
    assert b"Traceback" not in body
    assert headers["content-type"] == "application/json"
    assert headers["x-node-id"] == NODE
    assert len(headers.getlist("x-request-id")) == 1
    (logged,) = [r for r in caplog.records if r.name == "abacus.error"]
    assert logged.exc_info is not None, "the traceback goes to the log instead"
    assert requests_total("other", "500") == before + 1


def test_an_exception_after_the_response_started_sends_nothing_more(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def late(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise RuntimeError("half way")

    sent = run(late)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert any(r.name == "abacus.error" for r in caplog.records)


def test_a_client_gone_before_its_body_came_is_no_error(caplog: pytest.LogCaptureFixture) -> None:
    """The node cuts a body that stalls (abacus/node/http_protocol.py); the app reading it finds
    the client gone. No traceback, and not a 500 of the node's: 499, as nginx logs it."""

    async def reads_a_body(scope: Scope, receive: Receive, send: Send) -> None:
        # What Starlette's error handling does on the way out: a 500 that nobody receives.
        await send({"type": "http.response.start", "status": 500, "headers": []})
        raise ClientDisconnect

    caplog.set_level(logging.INFO)
    before_500, before_499 = requests_total("other", "500"), requests_total("other", "499")
    run(reads_a_body, path="/elsewhere")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    (line,) = [r for r in caplog.records if r.name == "abacus.access"]
    assert line.__dict__["status"] == 499
    assert requests_total("other", "500") == before_500
    assert requests_total("other", "499") == before_499 + 1


def test_metrics_label_the_app_s_own_paths_and_lump_the_rest() -> None:
    known, other = requests_total(KNOWN, "200"), requests_total("other", "200")
    seconds = REGISTRY.get_sample_value(
        "abacus_http_request_duration_seconds_count", {"route": KNOWN}
    )
    run(ok)
    run(ok, path="/random/path/123")
    assert requests_total(KNOWN, "200") == known + 1
    assert requests_total("other", "200") == other + 1
    assert (
        REGISTRY.get_sample_value("abacus_http_request_duration_seconds_count", {"route": KNOWN})
        == (seconds or 0) + 1
    )


def test_one_access_line_per_request_carries_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def with_fields(scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"]["log_fields"] = {"batch_size": 3, "conflicts": 0}
        await ok(scope, receive, send)

    caplog.set_level(logging.INFO, logger="abacus.access")
    caplog.handler.addFilter(ContextFilter(NODE))
    sent = run(with_fields, headers=[(b"x-request-id", b"req-42")])
    assert response_headers(sent)["x-request-id"] == "req-42"
    (line,) = [r for r in caplog.records if r.name == "abacus.access"]
    fields = line.__dict__
    assert line.getMessage() == "GET /known 200"
    assert (fields["method"], fields["path"], fields["status"]) == ("GET", KNOWN, 200)
    assert fields["duration_ms"] >= 0
    assert (fields["batch_size"], fields["conflicts"]) == (3, 0)
    assert (fields["request_id"], fields["node_id"]) == ("req-42", NODE)


def test_other_scopes_pass_through_untouched() -> None:
    seen: list[Scope] = []

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    async def nothing() -> Message:
        return {"type": "lifespan.startup"}

    async def ignore(message: Message) -> None:
        raise AssertionError("nothing is sent")

    scope: Scope = {"type": "lifespan"}
    middleware = RequestContextMiddleware(lifespan_app, NODE, frozenset())
    asyncio.run(middleware(scope, nothing, ignore))
    assert seen == [{"type": "lifespan"}], "no state, no ids added"


@pytest.mark.parametrize(
    ("access_log", "lines"),
    [
        ("errors", ["GET /known 404"]),
        ("changes", ["POST /known 200", "GET /known 404", "DELETE /known 200"]),
        ("all", ["GET /known 200", "POST /known 200", "GET /known 404", "DELETE /known 200"]),
    ],
)
def test_which_answers_get_an_access_line(
    caplog: pytest.LogCaptureFixture, access_log: str, lines: list[str]
) -> None:
    async def missing(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    caplog.set_level(logging.INFO, logger="abacus.access")
    before = requests_total(KNOWN, "200")
    run(ok, access_log=access_log)
    run(ok, method="POST", access_log=access_log)
    run(missing, access_log=access_log)
    run(ok, method="DELETE", access_log=access_log)
    assert [r.getMessage() for r in caplog.records if r.name == "abacus.access"] == lines
    assert requests_total(KNOWN, "200") == before + 1, "every request counted in the metrics"
