"""The API's errors: one exception type carrying the spec's status, code and message."""

from __future__ import annotations

from starlette.responses import Response

from app.json_body import encode

# Seconds a client should wait before retrying a 503: long enough for a Redis restart to begin.
RETRY_AFTER_S = 1


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
