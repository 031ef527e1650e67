"""`python -m app`: one node for development, on PORT, against REDIS_URL (no Gunicorn)."""

from __future__ import annotations

import sys

import uvicorn

from app.logging_config import logging_config
from app.settings import Settings, SettingsError


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"abacus: {exc}")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=logging_config(settings.log_level, settings.log_format, settings.node_id),
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
