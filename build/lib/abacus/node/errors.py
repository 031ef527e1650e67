"""The API's errors: one exception type carrying its status, code and message (docs/api.md)."""

from __future__ import annotations

from enum import StrEnum

from starlette.responses import Response

from abacus.node.json_body import encode


class ErrorCode(StrEnum):
    """Every `error` an answer can carry, the nodes' and the balancer's (its template uses these
    too; a test holds it to this list), in the order of docs/api.md's table. /openapi.json lists
    them from here."""

    BODY_TOO_LARGE = "body_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    INVALID_JSON = "invalid_json"
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"
    INVALID_BODY = "invalid_body"
    INVALID_NUMBER = "invalid_number"
    NUMBER_OUT_OF_RANGE = "number_out_of_range"
    SUM_OUT_OF_RANGE = "sum_out_of_range"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    IDEMPOTENCY_KEY_REFUSED = "idempotency_key_refused"
    KEY_QUOTA_EXHAUSTED = "key_quota_exhausted"
    KEY_STORE_FULL = "key_store_full"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    MISDIRECTED_REQUEST = "misdirected_request"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    OUTCOME_UNKNOWN = "outcome_unknown"
    BAD_REQUEST = "bad_request"
    HEADER_TOO_LARGE = "header_too_large"
    URI_TOO_LONG = "uri_too_long"
    BAD_GATEWAY = "bad_gateway"
    GATEWAY_TIMEOUT = "gateway_timeout"
    INTERNAL_ERROR = "internal_error"


# Seconds a client should wait before retrying a 503: long enough for a Redis restart to begin.
RETRY_AFTER_S = 1
# Seconds before asking again about a new key the key store has no room for: room comes back only
# as records expire, so clients told "1 s" would spend the nodes' time and win nothing sooner.
KEY_STORE_FULL_RETRY_AFTER_S = 10


class ApiError(Exception):
    """An error answered as `{"error": code, "message": message}` with `status`."""

    def __init__(
        self, status: int, code: ErrorCode, message: str, headers: dict[str, str] | None = None
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
    status: int, code: ErrorCode, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = encode({"error": code, "message": message})
    return Response(body, status, headers=headers, media_type="application/json")


def unavailable(message: str = "Redis is unavailable; nothing was changed") -> ApiError:
    return ApiError(503, ErrorCode.UNAVAILABLE, message)


def out_of_time() -> ApiError:
    """The add was not committed by its deadline (and, where needed, is fenced): it never will."""
    return unavailable("Redis could not take the add in time; nothing changed")


def outcome_unknown(reason: str = "Redis became unreachable after the add was sent") -> ApiError:
    return ApiError(
        503,
        ErrorCode.OUTCOME_UNKNOWN,
        f"{reason}; the add may or may not have counted: retry with the same Idempotency-Key to "
        "learn which",
    )


def idempotency_key_refused() -> ApiError:
    """The key's add was refused for good (its key is fenced): it did not count and never will.

    No Retry-After: the same key always gets this answer; a new key is a new add."""
    return ApiError(
        409,
        ErrorCode.IDEMPOTENCY_KEY_REFUSED,
        "an earlier request with this Idempotency-Key was refused and did not count; it never "
        "will: send the add again with a new key",
    )


def idempotency_key_reused() -> ApiError:
    return ApiError(
        422,
        ErrorCode.IDEMPOTENCY_KEY_REUSED,
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
        ErrorCode.KEY_QUOTA_EXHAUSTED,
        f"this client has used its {limit} new Idempotency-Keys for now, and this request did "
        "not add: ask again with the same Idempotency-Key after Retry-After seconds, or send the "
        "add without a key",
        {"Retry-After": str(retry_after_s)},
    )


def key_store_full() -> ApiError:
    """Redis's memory is nearly full: new Idempotency-Keys wait while the rest goes on."""
    return ApiError(
        503,
        ErrorCode.KEY_STORE_FULL,
        "Redis memory is nearly full, so new Idempotency-Keys are paused, and this request did "
        "not add: ask again with the same Idempotency-Key after Retry-After seconds, or send the "
        "add without a key",
        {"Retry-After": str(KEY_STORE_FULL_RETRY_AFTER_S)},
    )


def sum_out_of_range() -> ApiError:
    return ApiError(
        422,
        ErrorCode.SUM_OUT_OF_RANGE,
        "this add would take the sum out of bounds (absolute value below 10^30, at most 18 "
        "digits after the decimal point); nothing was changed",
    )
