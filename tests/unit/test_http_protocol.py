"""The node's HTTP protocol in process: its head limit, its deadlines, its stop, its own answers."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from abacus.node.node_limits import BODY_TIMEOUT_S, HEAD_LIMIT_BYTES, HEAD_TIMEOUT_S, KEEPALIVE_S
from abacus.node.protocol_answers import NODE_ID_KEY
from tests.unit.protocol_support import Connection, EchoApp, Reply, run

NODE = "node-p"
STATE = {NODE_ID_KEY: NODE}
FRESH_ID = re.compile(r"[0-9a-f]{32}")


def get(path: str = "/abacus/sum", headers: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: node\r\n{headers}\r\n".encode("latin-1")


def post(body: bytes, length: int | None = None, headers: str = "") -> bytes:
    size = len(body) if length is None else length
    head = f"POST /abacus/number HTTP/1.1\r\nHost: node\r\nContent-Length: {size}\r\n{headers}\r\n"
    return head.encode("latin-1") + body


def head_of(size: int, request_id: str = "r-1") -> bytes:
    """A GET whose request line and headers are exactly `size` bytes (the blank line included)."""
    bare = get(headers=f"X-Request-ID: {request_id}\r\nX-Pad: \r\n")
    pad = size - len(bare)
    assert pad >= 0
    return get(headers=f"X-Request-ID: {request_id}\r\nX-Pad: {'p' * pad}\r\n")


def in_reads(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def assert_error(reply: Reply, status: int, code: str) -> None:
    assert reply.status == status
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["connection"] == "close"
    assert reply.headers["x-node-id"] == NODE
    body = reply.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == code


# ----- the head limit ---------------------------------------------------------------------------


@pytest.mark.parametrize("read_size", [HEAD_LIMIT_BYTES + 100, 1000, 1])
def test_a_head_of_the_limit_is_served_and_one_byte_more_is_refused(read_size: int) -> None:
    async def test() -> None:
        app = EchoApp()
        at_limit = Connection(app, state=STATE)
        for data in in_reads(head_of(HEAD_LIMIT_BYTES), read_size):
            at_limit.send(data)
        assert await at_limit.until(lambda: len(at_limit.replies()) == 1)
        assert at_limit.replies()[0].status == 200
        assert not at_limit.transport.closed

        over = Connection(app, state=STATE)
        for data in in_reads(head_of(HEAD_LIMIT_BYTES + 1), read_size):
            over.send(data)
        (reply,) = over.replies()
        assert_error(reply, 431, "header_too_large")
        assert reply.headers["x-request-id"] == "r-1", "the id was read before the limit"
        assert over.transport.closed
        assert app.bodies == [b""], "only the request within the limit reached the app"

    run(test)


def test_no_byte_past_the_limit_reaches_the_parser() -> None:
    """uvicorn concatenates the URL once per piece the parser gets, quadratic in the pieces:
    past the limit there are none."""

    async def test() -> None:
        connection = Connection(EchoApp(), state=STATE)
        parser = connection.protocol.parser
        fed: list[int] = []

        class Counting:
            def feed_data(self, data: memoryview) -> None:
                fed.append(len(data))
                parser.feed_data(data)

            def __getattr__(self, name: str) -> Any:
                return getattr(parser, name)

        connection.protocol.parser = Counting()  # type: ignore[assignment]
        connection.send(b"GET /" + b"u" * (4 * 2**20))
        connection.send(b"u" * 2**20)
        assert sum(fed) <= HEAD_LIMIT_BYTES
        assert len(connection.protocol.url) < HEAD_LIMIT_BYTES
        (reply,) = connection.replies()
        assert_error(reply, 431, "header_too_large")
        assert FRESH_ID.fullmatch(reply.headers["x-request-id"])
        assert connection.transport.closed

    run(test)


def test_many_small_headers_are_capped_like_one_large_one() -> None:
    async def test() -> None:
        connection = Connection(EchoApp(), state=STATE)
        connection.send(b"GET / HTTP/1.1\r\nX-Request-ID: many\r\n")
        for _ in range(2 * HEAD_LIMIT_BYTES // 8192):
            connection.send(b"X-a: b\r\n" * 1024)
        (reply,) = connection.replies()
        assert_error(reply, 431, "header_too_large")
        assert reply.headers["x-request-id"] == "many"
        assert len(connection.protocol.headers) < HEAD_LIMIT_BYTES / 8

    run(test)


def test_pipelined_requests_each_have_a_limit_of_their_own() -> None:
    async def test() -> None:
        count = 3 * HEAD_LIMIT_BYTES // 300
        one = get(headers=f"X-Pad: {'p' * 250}\r\n")
        connection = Connection(EchoApp(), state=STATE)
        connection.send(one * count)
        assert await connection.until(lambda: len(connection.replies()) == count)
        assert {reply.status for reply in connection.replies()} == {200}

    run(test)


# ----- what the parser refuses ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "own_id"),
    [
        (b"GET /abacus/\xff HTTP/1.1\r\nHost: node\r\nX-Request-ID: req-1\r\n\r\n", False),
        (b"GET /abacus/sum HTTP/1.1\r\nX-Request-ID: req-1\r\nX-Junk: a\x01b\r\n\r\n", True),
        (b"FOO /abacus/sum HTTP/1.1\r\nX-Request-ID: req-1\r\n\r\n", False),
        (b"GET /abacus/sum HTTP/1.1\r\nX-Request-ID: bad id!\r\nX-Junk: \x01\r\n\r\n", False),
    ],
    ids=["byte 0xff in the path", "byte 0x01 in a header", "unknown method", "bad request id"],
)
def test_what_the_parser_refuses_is_a_json_400(request_bytes: bytes, own_id: bool) -> None:
    async def test() -> None:
        app = EchoApp()
        connection = Connection(app, state=STATE)
        connection.send(request_bytes)
        (reply,) = connection.replies()
        assert_error(reply, 400, "bad_request")
        request_id = reply.headers["x-request-id"]
        assert request_id == "req-1" if own_id else FRESH_ID.fullmatch(request_id)
        assert connection.transport.closed
        assert app.bodies == []

    run(test)


def test_uvicorn_s_own_400_is_json_too() -> None:
    async def test() -> None:
        connection = Connection(EchoApp(), state=STATE)
        connection.protocol.send_400_response("Invalid HTTP request received.")
        (reply,) = connection.replies()
        assert_error(reply, 400, "bad_request")
        assert connection.transport.closed

    run(test)


def test_an_upgrade_nobody_serves_is_answered_as_plain_http() -> None:
    async def test() -> None:
        connection = Connection(EchoApp(), state=STATE)
        connection.send(get(headers="Connection: upgrade\r\nUpgrade: h2c\r\n"))
        assert await connection.until(lambda: len(connection.replies()) == 1)
        assert connection.replies()[0].status == 200

    run(test)


def test_a_bad_request_does_not_take_the_id_of_the_one_before() -> None:
    async def test() -> None:
        connection = Connection(EchoApp(), state=STATE)
        connection.send(get(headers="X-Request-ID: first\r\n"))
        assert await connection.until(lambda: len(connection.replies()) == 1)
        connection.send(b"FOO / HTTP/1.1\r\n\r\n")
        first, refused = connection.replies()
        assert first.status == 200
        assert_error(refused, 400, "bad_request")
        assert FRESH_ID.fullmatch(refused.headers["x-request-id"])

    run(test)


def test_a_bad_request_behind_one_being_answered_waits_for_that_answer() -> None:
    async def test() -> None:
        app = EchoApp(gate=asyncio.Event())
        connection = Connection(app, state=STATE)
        connection.send(post(b'{"number": 1}') + b"FOO / HTTP/1.1\r\n\r\n")
        assert await connection.until(lambda: app.bodies == [b'{"number": 1}'])
        assert connection.transport.sent == b"", "no 400 in front of the answer"
        assert not connection.transport.closed
        assert app.gate is not None
        app.gate.set()
        assert await connection.until(lambda: connection.transport.closed)
        (reply,) = connection.replies()
        assert (reply.status, reply.body) == (200, b'{"number": 1}')
        assert reply.headers["connection"] == "close"
        assert connection.transport.sent_after_close == b""

    run(test)


# ----- deadlines --------------------------------------------------------------------------------


def test_a_new_connection_has_the_head_timeout_from_its_connect() -> None:
    async def test() -> None:
        app = EchoApp()
        connection = Connection(app, state=STATE)
        (deadline,) = connection.deadlines()
        assert deadline.delay == HEAD_TIMEOUT_S
        connection.send(b"GET /abacus/sum HT")
        assert connection.deadlines() == [deadline], "more bytes do not extend it"
        deadline.fire()
        assert connection.transport.closed
        assert connection.transport.sent == b""
        assert app.bodies == []

    run(test)


@pytest.mark.parametrize("first_bytes", [b"G", b"\r\n"], ids=["a byte of a request", "a blank"])
def test_a_keep_alive_connection_gets_the_head_timeout_once_its_next_request_begins(
    first_bytes: bytes,
) -> None:
    async def test() -> None:
        connection = Connection(EchoApp(), state=STATE)
        connection.send(get())
        assert await connection.until(lambda: len(connection.replies()) == 1)
        assert connection.deadlines() == [], "idle between requests: the keep-alive's"
        (keep_alive,) = connection.keep_alive_timers()
        assert keep_alive.delay == KEEPALIVE_S
        connection.send(first_bytes)
        assert connection.keep_alive_timers() == []
        (deadline,) = connection.deadlines()
        assert deadline.delay == HEAD_TIMEOUT_S
        deadline.fire()
        assert connection.transport.closed

    run(test)


def test_a_next_head_that_came_with_the_request_before_has_the_head_timeout() -> None:
    async def test() -> None:
        connection = Connection(EchoApp(), state=STATE)
        connection.send(get() + b"GET /abacus/sum HT")
        assert await connection.until(lambda: len(connection.replies()) == 1)
        (deadline,) = connection.deadlines()
        assert deadline.delay == HEAD_TIMEOUT_S
        deadline.fire()
        assert connection.transport.closed

    run(test)


def test_a_stalled_body_is_cut_at_the_body_timeout() -> None:
    async def test() -> None:
        app = EchoApp()
        connection = Connection(app, state=STATE)
        connection.send(post(b'{"num', length=13))
        (deadline,) = connection.deadlines()
        assert deadline.delay == BODY_TIMEOUT_S
        connection.send(b'ber"')
        assert connection.deadlines() == [deadline], "more bytes do not extend it"
        deadline.fire()
        assert connection.transport.closed
        assert await connection.until(lambda: app.disconnects == 1)
        assert connection.transport.sent + connection.transport.sent_after_close == b""

    run(test)


def test_a_complete_request_is_never_cut_while_the_app_answers_it() -> None:
    async def test() -> None:
        app = EchoApp(gate=asyncio.Event())
        connection = Connection(app, state=STATE)
        connection.send(post(b'{"number": 1}'))
        assert await connection.until(lambda: len(app.bodies) == 1)
        assert connection.deadlines() == [], "no deadline while the app answers"
        # A next request begins and stalls while the first is still being answered.
        connection.send(b"GET /abacus/sum HT")
        (deadline,) = connection.deadlines()
        deadline.fire()
        assert not connection.transport.closed
        assert app.gate is not None
        app.gate.set()
        assert await connection.until(lambda: connection.transport.closed)
        (reply,) = connection.replies()
        assert (reply.status, reply.body) == (200, b'{"number": 1}')
        assert reply.headers["connection"] == "close"

    run(test)


def test_a_complete_request_has_no_deadline_and_the_next_is_served() -> None:
    async def test() -> None:
        connection = Connection(EchoApp(), state=STATE)
        connection.send(post(b'{"number": 1}'))
        assert await connection.until(lambda: len(connection.replies()) == 1)
        assert connection.deadlines() == []
        connection.send(post(b'{"number": 2}'))
        assert await connection.until(lambda: len(connection.replies()) == 2)
        assert [r.body for r in connection.replies()] == [b'{"number": 1}', b'{"number": 2}']
        assert not connection.transport.closed

    run(test)


# ----- a graceful stop --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /abacus/sum HT", get(), get() + b"GET /abacus/sum HT", post(b'{"n', length=13)],
    ids=["nothing", "half a head", "idle keep-alive", "half a next head", "half a body"],
)
def test_a_stop_closes_a_connection_that_holds_no_complete_request(sent: bytes) -> None:
    async def test() -> None:
        app = EchoApp()
        connection = Connection(app, state=STATE)
        connection.send(sent)
        answers = sent.count(b"\r\n\r\n") - sent.count(b"POST")
        assert await connection.until(lambda: len(connection.replies()) == answers)
        connection.protocol.shutdown()
        assert connection.transport.closed
        assert await connection.until(lambda: connection.transport.lost)
        assert app.disconnects == sent.count(b"POST"), "the app reading a body is told"

    run(test)


def test_a_stop_lets_a_complete_request_be_answered_then_closes() -> None:
    async def test() -> None:
        app = EchoApp(gate=asyncio.Event())
        connection = Connection(app, state=STATE)
        connection.send(post(b'{"number": 1}'))
        assert await connection.until(lambda: len(app.bodies) == 1)
        connection.protocol.shutdown()
        assert not connection.transport.closed
        assert app.gate is not None
        app.gate.set()
        assert await connection.until(lambda: connection.transport.closed)
        (reply,) = connection.replies()
        assert reply.status == 200
        assert reply.headers["connection"] == "close"

    run(test)


def test_a_stop_answers_queued_complete_requests_and_drops_an_arriving_one() -> None:
    async def test() -> None:
        app = EchoApp(gate=asyncio.Event())
        connection = Connection(app, state=STATE)
        pipelined = post(b'{"number": 1}') + post(b'{"number": 2}') + post(b'{"n', length=13)
        connection.send(pipelined)
        assert await connection.until(lambda: len(app.bodies) == 1)
        connection.protocol.shutdown()
        assert not connection.transport.closed
        assert app.gate is not None
        app.gate.set()
        assert await connection.until(lambda: connection.transport.closed)
        first, second = connection.replies()
        assert (first.body, second.body) == (b'{"number": 1}', b'{"number": 2}')
        assert second.headers["connection"] == "close"
        assert app.bodies == [b'{"number": 1}', b'{"number": 2}'], "the third never started"

    run(test)


# ----- the concurrency limit --------------------------------------------------------------------


def test_over_the_concurrency_limit_a_request_is_a_json_503() -> None:
    async def test() -> None:
        app = EchoApp()
        # This connection alone reaches a limit of 1 (uvicorn counts it among the connections).
        connection = Connection(app, state=STATE, limit_concurrency=1)
        connection.send(get(headers="X-Request-ID: r-503\r\n"))
        assert await connection.until(lambda: connection.transport.closed)
        (reply,) = connection.replies()
        assert_error(reply, 503, "unavailable")
        assert reply.headers["retry-after"] == "1"
        assert reply.headers["x-request-id"] == "r-503"
        assert app.bodies == []

        under = Connection(app, state=STATE, limit_concurrency=2)
        under.send(get())
        assert await under.until(lambda: len(under.replies()) == 1)
        assert under.replies()[0].status == 200

    run(test)


def test_without_the_app_s_node_id_the_answers_have_none() -> None:
    async def test() -> None:
        connection = Connection(EchoApp())
        connection.send(b"FOO / HTTP/1.1\r\n\r\n")
        (reply,) = connection.replies()
        assert reply.status == 400
        assert "x-node-id" not in reply.headers

    run(test)
