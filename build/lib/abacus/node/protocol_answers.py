"""Answers a node's HTTP server gives by itself, without the app, in the API's JSON error shape.

The parser's 400, the head limit's 431 and the concurrency limit's 503 come from the protocol
(http_protocol.py), before or instead of the app; like every other answer of a node they carry
`X-Request-ID` (the request's own when it was read and well-formed) and `X-Node-Id`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from abacus.node.errors import ErrorCode, error_response, unavailable
from abacus.node.request_ids import request_id_for

# The app's lifespan puts its node id in the server's state under this key (see main.py):
# the protocol has no settings of its own, and the app's are the ones its answers must match.
NODE_ID_KEY = "abacus.node_id"

OVERLOADED_MESSAGE = "the node is serving as many connections as it may; nothing was changed"


def _ids(request_id: str, state: Mapping[str, Any]) -> dict[str, str]:
    ids = {"X-Request-ID": request_id, "Connection": "close"}
    node_id = state.get(NODE_ID_KEY)
    if isinstance(node_id, str):
        ids["X-Node-Id"] = node_id
    return ids


def raw_error(
    status: int,
    code: ErrorCode,
    message: str,
    *,
    request_id: str,
    state: Mapping[str, Any],
    default_headers: Iterable[tuple[bytes, bytes]],
) -> bytes:
    """A whole HTTP/1.1 error response, to write on a connection that no request cycle answers
    (the request could not be read), and that is closed after it."""
    response = error_response(status, code, message, _ids(request_id, state))
    lines = [STATUS_LINE[status]]
    for name, value in [*default_headers, *response.raw_headers]:
        lines.append(name + b": " + value + b"\r\n")
    return b"".join([*lines, b"\r\n", bytes(response.body)])


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The id for an answer to a request whose headers (names lowercased) are these, so far."""
    for name, value in headers:
        if name == b"x-request-id":
            return request_id_for(value.decode("latin-1"))
    return request_id_for("")


async def overloaded(scope: Scope, receive: Receive, send: Send) -> None:
    """The concurrency limit's answer (uvicorn's own is text/plain): 503 `unavailable`, with
    Retry-After; the app never saw the request, so nothing was changed."""
    request_id = request_id_for(Headers(scope=scope).get("x-request-id", ""))
    response: Response = unavailable(OVERLOADED_MESSAGE).response()
    response.headers.update(_ids(request_id, scope.get("state", {})))
    await response(scope, receive, send)
