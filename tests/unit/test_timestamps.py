"""The responses' timestamp: ISO 8601, UTC, with its offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from abacus.node.timestamps import timestamp


def test_a_timestamp_is_iso_8601_in_utc_with_its_offset() -> None:
    stamp = timestamp()
    assert stamp.endswith("+00:00")
    parsed = datetime.fromisoformat(stamp)
    assert parsed.tzinfo is not None
    assert abs(datetime.now(UTC) - parsed) < timedelta(minutes=1)
