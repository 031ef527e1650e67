"""The API's errors: one exception type carrying its status, code and message (docs/api.md)."""

from __future__ import annotations

from starlette.responses import Response

from abacus.node.json_body import encode

# Seconds a client should wait before retrying a 503: long enough for a Redis restart to begin.
RETRY_AFTER_S = 1
# Seconds before asking again about a new key the key store has no room for: room comes back only
# as records expire, so clients told "1 s" would spend the nodes' time and win nothing sooner.
KEY_STORE_FULL_RETRY_AFTER_S = 10


class ApiError(Exception):
    """An error answered as `{"error": code, "message": message}` with `status`."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        if status == 503:
            self.headers.setdefault("Retry-After", str(RETRY_AFTER_S))

    def response(self) -> Response:
        return error_response(self.status, self.code, self.message, self.headers)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = encode({"error": code, "message": message})
    return Response(body, status, headers=headers, media_type="application/json")


def unavailable(message: str = "Redis is unavailable; nothing was changed") -> ApiError:
    return ApiError(503, "unavailable", message)


def out_of_time() -> ApiError:
    """The add was not committed by its deadline (and, where needed, is fenced): it never will."""
    return unavailable("Redis could not take the add in time; nothing changed")


def outcome_unknown(reason: str = "Redis became unreachable after the add was sent") -> ApiError:
    return ApiError(
        503,
        "outcome_unknown",
        f"{reason}; the add may or may not have counted: retry with the same Idempotency-Key to "
        "learn which",
    )


def idempotency_key_refused() -> ApiError:
    """The key's add was refused for good (its key is fenced): it did not count and never will.

    No Retry-After: the same key always gets this answer; a new key is a new add."""
    return ApiError(
        409,
        "idempotency_key_refused",
        "an earlier request with this Idempotency-Key was refused and did not count; it never "
        "will: send the add again with a new key",
    )


def idempotency_key_reused() -> ApiError:
    return ApiError(
        422,
        "idempotency_key_reused",
        "this Idempotency-Key was already used with a different number",
    )


# The key budget's two answers (key_quota.py, memory_watch.py) say only that *this request*
# did not add: another request with the same key may be in flight on another node, so neither may
# say the key's add will never count, and neither writes a fence (a fence is a record too: the
# very memory the budget bounds). Asked again with the same key, the add is taken, replayed or
# refused for good like any other.


def key_quota_exhausted(retry_after_s: int, limit: int) -> ApiError:
    """This client made its quota of new Idempotency-Keys in its current window."""
    return ApiError(
        429,
        "key_quota_exhausted",
        f"this client has used its {limit} new Idempotency-Keys for now, and this request did "
        "not add: ask again with the same Idempotency-Key after Retry-After seconds, or send the "
        "add without a key",
        {"Retry-After": str(retry_after_s)},
    )


def key_store_full() -> ApiError:
    """Redis's memory is nearly full: new Idempotency-Keys wait while the rest goes on."""
    return ApiError(
        503,
        "key_store_full",
        "Redis memory is nearly full, so new Idempotency-Keys are paused, and this request did "
        "not add: ask again with the same Idempotency-Key after Retry-After seconds, or send the "
        "add without a key",
        {"Retry-After": str(KEY_STORE_FULL_RETRY_AFTER_S)},
    )
