"""abacus_client raises every lasting refusal of the API's error table at once, typed by the
service's own `ErrorCode`, and every code of that list has exactly one rule."""

from __future__ import annotations

import pytest

from abacus_client import ErrorCode, ServiceError
from abacus_client.outcomes import AddOutcome, add_outcome
from abacus_client.retry_rules import PASSING_REFUSALS
from tests.client_fakes import AsyncDriver, FakeService, SyncDriver, default_options, error

# Every 4xx row of docs/api.md's error table that asking again would not change, with its status.
LASTING_4XX = {
    ErrorCode.BODY_TOO_LARGE: 413,
    ErrorCode.URI_TOO_LONG: 414,
    ErrorCode.HEADER_TOO_LARGE: 431,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.INVALID_IDEMPOTENCY_KEY: 400,
    ErrorCode.INVALID_BODY: 422,
    ErrorCode.INVALID_NUMBER: 422,
    ErrorCode.NUMBER_OUT_OF_RANGE: 422,
    ErrorCode.SUM_OUT_OF_RANGE: 422,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: 422,
    ErrorCode.IDEMPOTENCY_KEY_REFUSED: 409,  # unless the caller allowed a new key
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.MISDIRECTED_REQUEST: 421,
    ErrorCode.BAD_REQUEST: 400,
}
# Asked again with the same key: the key budget's, and the refusals that may pass.
ASKED_AGAIN = {ErrorCode.KEY_QUOTA_EXHAUSTED: 429, ErrorCode.KEY_STORE_FULL: 503}
ASKED_AGAIN |= {ErrorCode.UNAVAILABLE: 503, ErrorCode.RATE_LIMITED: 429}
# Open: may have counted.
OPEN = {
    ErrorCode.OUTCOME_UNKNOWN: 503,
    ErrorCode.BAD_GATEWAY: 502,
    ErrorCode.GATEWAY_TIMEOUT: 504,
    ErrorCode.INTERNAL_ERROR: 500,
}


def test_every_error_code_has_exactly_one_rule() -> None:
    """A code added to the service's list fails here until the client has a rule for it."""
    tables = [set(LASTING_4XX), set(ASKED_AGAIN), set(OPEN)]
    assert set().union(*tables) == set(ErrorCode)
    assert sum(len(table) for table in tables) == len(ErrorCode)


def test_the_tables_agree_with_the_outcomes() -> None:
    for code, status in LASTING_4XX.items():
        assert add_outcome(status, code) is AddOutcome.NOT_COUNTED, code
    for code, status in OPEN.items():
        assert add_outcome(status, code) is AddOutcome.OPEN, code
    for code, status in ASKED_AGAIN.items():
        passing = code in PASSING_REFUSALS
        expected = AddOutcome.NOT_COUNTED if passing else AddOutcome.NOT_BY_THIS_REQUEST
        assert add_outcome(status, code) is expected, code


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> type[SyncDriver] | type[AsyncDriver]:
    return SyncDriver if request.param == "sync" else AsyncDriver


@pytest.mark.parametrize(("code", "status"), LASTING_4XX.items(), ids=[*LASTING_4XX])
def test_a_lasting_refusal_is_raised_at_once_typed_by_its_code(
    kind: type[SyncDriver] | type[AsyncDriver], code: ErrorCode, status: int
) -> None:
    service = FakeService(error(status, code), then=error(500, "internal_error"))
    client = kind(service, default_options())
    try:
        with pytest.raises(ServiceError) as caught:
            client.add(1, key="k-1")
    finally:
        client.close()
    raised = caught.value
    assert raised.code is code
    assert raised.error == code.value
    assert raised.status == status
    assert raised.message == f"the {code} message"
    assert raised.key == "k-1"
    assert len(service.sent) == 1, "asked once: the answer would not change"
    assert service.slept == []


def test_a_code_newer_than_the_client_is_kept_as_sent() -> None:
    service = FakeService(error(418, "a_new_code"))
    client = SyncDriver(service, default_options())
    try:
        with pytest.raises(ServiceError) as caught:
            client.add(1)
    finally:
        client.close()
    assert caught.value.code is None
    assert caught.value.error == "a_new_code"
    assert caught.value.status == 418
