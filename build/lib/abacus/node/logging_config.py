"""One logging setup for Gunicorn, Uvicorn and the app: a JSON object a line, or text for people.

Every record carries the node's id and, inside a request, the request id that the client sees in
`X-Request-ID`, so one grep follows a request through the balancer's and the node's logs.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class ContextFilter(logging.Filter):
    """Adds `node_id` and `request_id` to every record."""

    def __init__(self, node_id: str = "") -> None:
        super().__init__()
        self.node_id = node_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.node_id = self.node_id
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


def logging_config(level: str, fmt: str, node_id: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` dictionary (also Gunicorn's `logconfig_dict`)."""
    formatters: dict[str, Any] = {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s %(node_id)s %(request_id)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            # ISO 8601 with the UTC offset, as the API's timestamps.
            "timestamp": "time",
        },
        "text": {
            "format": (
                "%(asctime)s %(levelname)-7s %(node_id)s %(name)s [%(request_id)s] %(message)s"
            ),
        },
    }
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
        "formatter": fmt,
        "filters": ["context"],
    }
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter, "node_id": node_id}},
        "formatters": {"json": formatters["json"], "text": formatters["text"]},
        "handlers": {"stdout": handler},
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            # One line a request comes from the app's own access log, with request id and timing.
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "uvicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False},
            "gunicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False},
        },
    }
