"""`python -m app`: one node for development, on PORT, against REDIS_URL (no Gunicorn)."""

from __future__ import annotations

import os

import uvicorn

from app.logging_config import logging_config
from app.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8000")),
        log_config=logging_config(settings.log_level, settings.log_format, settings.node_id),
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
