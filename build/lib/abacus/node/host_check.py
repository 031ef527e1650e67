"""Refuse requests for host names this service does not serve (DNS rebinding).

A web page on a name its author controls can point that name at 127.0.0.1 (or any address the
victim's browser reaches) and then talk to Abacus as its own origin: read the sum, add, reset
when no admin token is set. Its requests still carry the page's name in Host, so a node answers
only the names it is configured with (`ABACUS_SERVER_NAMES`), IP addresses (which rebinding
cannot use; health probes and scrapers use them) and requests without Host.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from abacus.node.errors import ErrorCode, error_response
from abacus.node.settings import Settings

# Scrapers address nodes by whatever name their discovery gives; the metrics hold no sum.
UNCHECKED_PATHS = frozenset({"/metrics"})


class HostCheckMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in UNCHECKED_PATHS:
            host = Headers(scope=scope).get("host", "")
            if not self.settings.serves_host(host):
                response = error_response(
                    421,
                    ErrorCode.MISDIRECTED_REQUEST,
                    "this service does not serve that host name; an operator can add it to "
                    "ABACUS_SERVER_NAMES",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
