"""Reading and checking `POST /abacus/number`, in the order of docs/api.md's error table (first
row wins)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from starlette.requests import Request

from abacus.node import amounts
from abacus.node.errors import ApiError, ErrorCode
from abacus.node.json_body import InvalidJSON, parse
from abacus.node.settings import is_visible_ascii

MAX_BODY_BYTES = 1024
MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True)
class AddRequest:
    number: Decimal
    idempotency_key: str | None


async def read_add_request(request: Request) -> AddRequest:
    body = await _read_body(request)
    _check_content_type(request.headers.get("content-type"))
    try:
        payload = parse(body)
    except InvalidJSON as exc:
        raise ApiError(400, ErrorCode.INVALID_JSON, f"the body is not valid JSON: {exc}") from None
    key = _idempotency_key(request.headers.getlist("idempotency-key"))
    return AddRequest(number=_number(payload), idempotency_key=key)


def _too_large() -> ApiError:
    return ApiError(
        413, ErrorCode.BODY_TOO_LARGE, f"the body must be at most {MAX_BODY_BYTES} bytes"
    )


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    return bytes(body)


def _check_content_type(header: str | None) -> None:
    media_type, *parameters = (header or "").split(";")
    charset_ok = all(
        name.strip().lower() == "charset" and value.strip().strip('"').lower() == "utf-8"
        for name, _, value in (p.partition("=") for p in parameters)
    )
    if media_type.strip().lower() != "application/json" or not charset_ok:
        raise ApiError(
            415,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json (a charset=utf-8 parameter is fine)",
        )


def _idempotency_key(values: list[str]) -> str | None:
    if not values:
        return None
    key = values[0]
    if len(values) > 1 or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not is_visible_ascii(key):
        raise ApiError(
            400,
            ErrorCode.INVALID_IDEMPOTENCY_KEY,
            f"Idempotency-Key must be one header of 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII "
            "characters",
        )
    return key


def _number(payload: object) -> Decimal:
    if not isinstance(payload, dict) or set(payload) != {"number"}:
        raise ApiError(
            422,
            ErrorCode.INVALID_BODY,
            'the body must be a JSON object with exactly one field, "number"',
        )
    value = payload["number"]
    if not isinstance(value, Decimal):
        raise ApiError(422, ErrorCode.INVALID_NUMBER, '"number" must be a JSON number')
    try:
        return amounts.check_bounds(value)
    except amounts.OutOfBounds as exc:
        raise ApiError(
            422, ErrorCode.NUMBER_OUT_OF_RANGE, f'"number" is out of bounds: {exc}'
        ) from None
