"""The answers the HTTP protocol gives by itself: the API's error shape, with the ids."""

from __future__ import annotations

import asyncio
import json
import re

from starlette.types import Message, Scope

from abacus.node.errors import ErrorCode
from abacus.node.protocol_answers import (
    NODE_ID_KEY,
    OVERLOADED_MESSAGE,
    overloaded,
    raw_error,
    request_id_of,
)

FRESH_ID = re.compile(r"[0-9a-f]{32}")


def test_a_raw_error_is_a_whole_json_response_that_closes() -> None:
    raw = raw_error(
        431,
        ErrorCode.HEADER_TOO_LARGE,
        "too big",
        request_id="r-1",
        state={NODE_ID_KEY: "node-r"},
        default_headers=[(b"server", b"uvicorn")],
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert status == "HTTP/1.1 431 Request Header Fields Too Large"
    assert lines[0] == "server: uvicorn", "the server's default headers come first"
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert (headers["x-request-id"], headers["x-node-id"]) == ("r-1", "node-r")
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body) == {"error": "header_too_large", "message": "too big"}


def test_the_request_id_is_the_first_one_sent_when_well_formed() -> None:
    assert request_id_of([(b"host", b"n"), (b"x-request-id", b"a-1"), (b"x-request-id", b"b")]) == (
        "a-1"
    )
    assert FRESH_ID.fullmatch(request_id_of([(b"x-request-id", b"no spaces please")]))
    assert FRESH_ID.fullmatch(request_id_of([]))


def test_the_overload_answer_is_a_json_503_that_changed_nothing() -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": "GET",
        "headers": [(b"x-request-id", b"over-1")],
        "state": {NODE_ID_KEY: "node-o"},
    }
    asyncio.run(overloaded(scope, receive, send))
    start, body = sent
    headers = {name.decode(): value.decode() for name, value in start["headers"]}
    assert start["status"] == 503
    assert headers["retry-after"] == "1"
    assert headers["connection"] == "close"
    assert (headers["x-request-id"], headers["x-node-id"]) == ("over-1", "node-o")
    assert json.loads(body["body"]) == {"error": "unavailable", "message": OVERLOADED_MESSAGE}
