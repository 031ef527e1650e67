"""Fresh `Idempotency-Key`s for adds whose caller gave none."""

from __future__ import annotations

import secrets

# 24 random bytes: 32 URL-safe characters, inside the API's 1 to 255 visible ASCII characters,
# and 192 bits, so no two clients anywhere pick the same key within its 24 hours.
KEY_BYTES = 24


def new_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)
