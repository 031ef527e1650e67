"""A node's HTTP/1.1 protocol: uvicorn's httptools protocol with the limits it lacks.

uvicorn's httptools protocol holds a request head of any size (the URL grows by concatenation,
quadratic in the number of reads; a block of small headers costs ~150 bytes of Python objects
per header) and waits forever for a head or a body that never completes. nginx in front has
limits of its own, but a node reached directly must not depend on its clients. This subclass:

- caps the request line and headers at HEAD_LIMIT_BYTES: a longer head is answered 431 and the
  connection closed; no byte beyond the cap reaches the parser;
- closes a connection whose request head is not complete HEAD_TIMEOUT_S after it began (a new
  connection's first request, or a keep-alive connection's next one once a byte of it came), or
  whose body is not complete BODY_TIMEOUT_S after its head. A request whose body has arrived is
  never cut while the app answers it: the connection is closed once it is answered;
- at a graceful stop, closes at once the connections whose request has not fully arrived
  (uvicorn waits for a body that may never come), and lets complete requests be answered;
- answers what the parser refuses (400) and the concurrency limit (503) in the API's JSON.

Private parts of uvicorn it relies on (the pinned 0.54.0): `_start_asgi_task`,
`_unset_keepalive_if_required`, the cycles' `more_body` / `keep_alive` / `disconnected`, and the
`pipeline` of requests queued behind the one being answered.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import httptools
from uvicorn._types import ASGI3Application
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from abacus.node import protocol_answers
from abacus.node.errors import ErrorCode
from abacus.node.node_limits import BODY_TIMEOUT_S, HEAD_LIMIT_BYTES, HEAD_TIMEOUT_S

# The parser is fed at most this much at a time, so that a head's size is checked between pieces
# and a head never gets into the parser (or uvicorn's URL concatenation) beyond the cap. When a
# request ends inside a piece, the whole piece counts against the next head, an upper bound of
# its share: a head pipelined behind another may so be refused at HEAD_LIMIT_BYTES minus this at
# worst, still far above what nginx sends. Requests here (a head and at most 1 KiB of body) fit
# in one piece, so the normal path feeds the parser once per read, as uvicorn does.
PIECE_BYTES = 8 * 1024

log = logging.getLogger("uvicorn.error")

UNPARSABLE = "the node could not parse this request"


class AbacusHttpProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # Between the end of a request (or the connect) and the end of the next head.
        self._reading_head = True
        # Bytes of the next head have come (or it is the connection's first: its wait starts at
        # the connect). Until then an idle keep-alive connection is uvicorn's keep-alive timer's.
        self._head_began = False
        self._head_bytes = 0
        self._heads = 0  # complete heads read on this connection
        self._ends = 0  # requests read whole (head and body)
        # A message is being parsed: its headers so far are `self.headers` (the id of an answer).
        self._message_open = False
        # The connection takes no more requests: it is closing, or closes once an answer in
        # progress is written; whatever else comes is dropped.
        self._done = False
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_for: tuple[str, int] | None = None

    # ----- connection events ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        self._unset_keepalive_if_required()
        if self._reading_head:
            self._head_began = True
        rest: bytes | memoryview = data
        piece: bytes | memoryview
        while rest:
            size = PIECE_BYTES
            if self._reading_head:
                size = min(size, HEAD_LIMIT_BYTES - self._head_bytes)
            if len(rest) > size:
                view = memoryview(rest)
                piece, rest = view[:size], view[size:]
            else:
                piece, rest = rest, b""
            ends = self._ends
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserUpgrade:
                # As uvicorn does: hand the connection over, or serve the request as plain HTTP
                # and drop the rest of this read.
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                    return
                self._unsupported_upgrade_warning()
                break
            except httptools.HttpParserError as exc:
                self._refuse(
                    400, ErrorCode.BAD_REQUEST, f"the node could not parse this request: {exc}"
                )
                return
            if self._reading_head:
                grown = len(piece) if self._ends != ends else self._head_bytes + len(piece)
                self._head_bytes = grown
                if grown >= HEAD_LIMIT_BYTES:
                    # Not complete after the cap's worth of bytes: it is over the cap.
                    self._refuse(
                        431,
                        ErrorCode.HEADER_TOO_LARGE,
                        f"the request line and headers must be at most {HEAD_LIMIT_BYTES} bytes",
                    )
                    return
        self._arm_deadline()

    def handle_websocket_upgrade(self) -> None:
        self._cancel_deadline()  # the connection is another protocol's from now on
        super().handle_websocket_upgrade()

    def shutdown(self) -> None:
        """A graceful stop: close now, unless complete requests are being answered."""
        self._close_when_answered()

    # ----- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        # Also when the next request came in the same read as the one before.
        self._head_began = True
        self._message_open = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_began = False
        self._heads += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_head = True
        self._head_began = False
        self._message_open = False
        self._ends += 1
        super().on_message_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        # uvicorn answers a request over its limit_concurrency with this text/plain 503.
        if app is service_unavailable:
            # Starlette's ASGI types and uvicorn's typed dicts describe the same messages.
            app = cast(ASGI3Application, protocol_answers.overloaded)
        super()._start_asgi_task(cycle, app)

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, ErrorCode.BAD_REQUEST, f"{UNPARSABLE}: {msg}")

    # ----- deadlines ----------------------------------------------------------------------------

    def _arm_deadline(self) -> None:
        """The one wait the connection's state calls for: its head's, its body's, or none (idle
        between requests, or the app answering a complete one)."""
        if self._reading_head:
            if not (self._heads == 0 or self._head_began):
                self._cancel_deadline()
                return
            due, seconds = ("head", self._heads), HEAD_TIMEOUT_S
        else:
            due, seconds = ("body", self._heads), BODY_TIMEOUT_S
        if due == self._deadline_for:
            return  # armed when this head or body began: more bytes do not extend it
        self._cancel_deadline()
        self._deadline_for = due
        self._deadline = self.loop.call_later(seconds, self._deadline_passed, due[0], seconds)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._deadline_for = None

    def _deadline_passed(self, part: str, seconds: float) -> None:
        self._deadline = None
        self._deadline_for = None
        log.info("Closing a connection: no complete request %s within %g s", part, seconds)
        self._close_when_answered()

    # ----- ending a connection ------------------------------------------------------------------

    def _close_when_answered(self) -> None:
        """Take no more requests: close now, or, while the app answers complete requests, once
        the last of them is answered. A request that has not fully arrived is dropped."""
        self._done = True
        self._drop_arriving_request()
        last = self._last_unanswered()
        if last is None:
            self.transport.close()
        else:
            last.keep_alive = False

    def _drop_arriving_request(self) -> None:
        cycle = self.cycle
        if cycle is None or not cycle.more_body or cycle.response_complete:
            return
        if self.pipeline and self.pipeline[0][0] is cycle:
            self.pipeline.popleft()  # queued behind another: it never started
        else:
            # The app is reading its body: it now reads a disconnect, and what it sends is dropped.
            cycle.disconnected = True
            cycle.message_event.set()

    def _last_unanswered(self) -> RequestResponseCycle | None:
        """The last complete request the app still has to answer, if any."""
        if self.pipeline:
            # Queued requests are complete (only the newest may not be, and it was dropped).
            return self.pipeline[0][0]
        cycle = self.cycle
        if cycle is not None and not cycle.more_body and not cycle.response_complete:
            return cycle
        return None

    def _refuse(self, status: int, code: ErrorCode, message: str) -> None:
        """Answer a request that cannot be read with an error, and close the connection. While
        the app answers complete requests on it, they are answered and the connection closed
        after them, without this error: it cannot be written in the middle of their answers."""
        headers = self.headers if self._message_open else []
        request_id = protocol_answers.request_id_of(headers)
        log.warning("Refused a request (%d): %s", status, message, extra={"request_id": request_id})
        self._cancel_deadline()
        self._done = True
        self._drop_arriving_request()
        last = self._last_unanswered()
        if last is not None:
            last.keep_alive = False
            return
        self.transport.write(
            protocol_answers.raw_error(
                status,
                code,
                message,
                request_id=request_id,
                state=self.app_state,
                default_headers=self.server_state.default_headers,
            )
        )
        self.transport.close()
