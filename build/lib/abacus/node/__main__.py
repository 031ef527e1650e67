"""`python -m abacus.node`: one node for development, on PORT, against REDIS_URL (no Gunicorn)."""

from __future__ import annotations

import sys

import uvicorn

from abacus.node.http_protocol import AbacusHttpProtocol
from abacus.node.logging_config import logging_config
from abacus.node.node_limits import (
    CONCURRENCY_LIMIT,
    GRACEFUL_TIMEOUT_S,
    KEEPALIVE_S,
    drain_timeout_s,
)
from abacus.node.settings import Settings, SettingsError


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"abacus: {exc}")
    uvicorn.run(
        "abacus.node.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=logging_config(settings.log_level, settings.log_format, settings.node_id),
        proxy_headers=False,
        # The same protocol and limits as a node under Gunicorn (worker.py).
        http=AbacusHttpProtocol,
        limit_concurrency=CONCURRENCY_LIMIT,
        timeout_keep_alive=KEEPALIVE_S,
        timeout_graceful_shutdown=drain_timeout_s(GRACEFUL_TIMEOUT_S, settings.add_deadline_s),
    )


if __name__ == "__main__":
    main()
