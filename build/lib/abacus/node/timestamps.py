"""The timestamp every response carries: ISO 8601 in UTC, with its offset."""

from __future__ import annotations

from datetime import UTC, datetime


def timestamp() -> str:
    return datetime.now(UTC).isoformat()
