"""ASGI middleware around the whole app: request id, node id, access log, metrics, no tracebacks.

Pure ASGI rather than Starlette's BaseHTTPMiddleware, which runs the endpoint in a task of its own
and costs a hot path that must stay cheap.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from abacus.node import metrics
from abacus.node.errors import ErrorCode, error_response
from abacus.node.logging_config import REQUEST_ID
from abacus.node.request_ids import request_id_for

access_log = logging.getLogger("abacus.access")
error_log = logging.getLogger("abacus.error")

CLIENT_GONE = 499
READS = frozenset({"GET", "HEAD"})
# The headers this middleware sets on every answer, whatever the app set.
OWN = frozenset({b"x-node-id", b"x-request-id"})


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        node_id: str,
        known_paths: frozenset[str],
        *,
        access_log: str = "all",
    ) -> None:
        self.app = app
        self.node_id = node_id
        self.node_id_header = node_id.encode("latin-1")
        # settings.ACCESS_LOGS: which answers get a line.
        self.log_all = access_log == "all"
        self.log_changes = access_log in ("all", "changes")
        # Metric labels: the app's own paths, anything else as "other" (bounded cardinality).
        self.known_paths = known_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(Headers(scope=scope).get("x-request-id", ""))
        token = REQUEST_ID.set(request_id)
        state = scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_ids(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                # One pass over the raw pairs, where MutableHeaders scanned and copied the list
                # for each header it set (a few per cent of a request in a profile).
                message["headers"] = [
                    *(pair for pair in message.get("headers", ()) if pair[0].lower() not in OWN),
                    (b"x-node-id", self.node_id_header),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        except ClientDisconnect:
            # The client left (or the node cut its stalled body) before its request had arrived:
            # nothing to answer, and no fault of the node's. 499 is nginx's word for it.
            status = CLIENT_GONE
        except Exception:
            error_log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if not response_started:
                response = error_response(500, ErrorCode.INTERNAL_ERROR, "internal error")
                await response(scope, receive, send_with_ids)
        finally:
            duration = time.perf_counter() - started
            route = scope["path"] if scope["path"] in self.known_paths else "other"
            _requests(route, scope["method"], status).inc()
            _request_seconds(route).observe(duration)
            changed = self.log_changes and scope["method"] not in READS
            if self.log_all or changed or status >= 300:
                _log_access(scope, status, duration, state)
            REQUEST_ID.reset(token)


def _log_access(scope: Scope, status: int, duration: float, state: dict[str, Any]) -> None:
    access_log.info(
        "%s %s %s",
        scope["method"],
        scope["path"],
        status,
        extra={
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(duration * 1000, 3),
            **state.get("log_fields", {}),
        },
    )


# The labelled children, looked up once: prometheus_client's `labels()` takes a lock and builds
# the key on every call, a few per cent of a request's CPU (a profile of reads at 64 clients).
@functools.lru_cache(maxsize=256)
def _requests(route: str, method: str, status: int) -> Counter:
    return metrics.REQUESTS.labels(route, method, str(status))


@functools.lru_cache(maxsize=256)
def _request_seconds(route: str) -> Histogram:
    return metrics.REQUEST_SECONDS.labels(route)
