"""The API's error type and its response: `{"error": code, "message": message}`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from abacus import conf
from abacus.node import errors
from abacus.node.errors import (
    KEY_STORE_FULL_RETRY_AFTER_S,
    RETRY_AFTER_S,
    ApiError,
    ErrorCode,
    error_response,
    key_quota_exhausted,
    key_store_full,
    outcome_unknown,
    unavailable,
)


def test_an_error_answers_with_its_status_code_and_message() -> None:
    response = ApiError(422, ErrorCode.INVALID_NUMBER, '"number" must be a JSON number').response()
    assert response.status_code == 422
    assert response.media_type == "application/json"
    assert json.loads(bytes(response.body)) == {
        "error": "invalid_number",
        "message": '"number" must be a JSON number',
    }
    assert "retry-after" not in response.headers


def test_headers_are_sent_and_copied() -> None:
    given = {"WWW-Authenticate": 'Bearer realm="abacus"'}
    error = ApiError(401, ErrorCode.UNAUTHORIZED, "no token", given)
    given["WWW-Authenticate"] = "changed later"
    assert error.response().headers["www-authenticate"] == 'Bearer realm="abacus"'


def test_every_503_says_when_to_retry() -> None:
    assert ApiError(503, ErrorCode.UNAVAILABLE, "down").response().headers["retry-after"] == str(
        RETRY_AFTER_S
    )
    own = ApiError(503, ErrorCode.UNAVAILABLE, "down", {"Retry-After": "5"})
    assert own.response().headers["retry-after"] == "5"


def test_error_response_is_the_same_shape() -> None:
    response = error_response(404, ErrorCode.NOT_FOUND, "no such path: /x", {"X-Extra": "1"})
    assert (response.status_code, response.headers["x-extra"]) == (404, "1")
    assert json.loads(bytes(response.body)) == {"error": "not_found", "message": "no such path: /x"}


def test_unavailable_means_nothing_changed() -> None:
    error = unavailable()
    assert (error.status, error.code) == (503, "unavailable")
    assert "nothing was changed" in error.message
    assert unavailable("the sum was not reset").message == "the sum was not reset"


def test_outcome_unknown_tells_the_client_how_to_learn_the_outcome() -> None:
    error = outcome_unknown()
    assert (error.status, error.code) == (503, "outcome_unknown")
    assert "Idempotency-Key" in error.message
    assert error.headers["Retry-After"] == str(RETRY_AFTER_S)


def test_the_key_budget_s_refusals_say_when_to_ask_again_with_the_same_key() -> None:
    quota = key_quota_exhausted(retry_after_s=55, limit=7)
    full = key_store_full()
    assert (quota.status, quota.code) == (429, "key_quota_exhausted")
    assert quota.headers["Retry-After"] == "55"
    assert (full.status, full.code) == (503, "key_store_full")
    assert full.headers["Retry-After"] == str(KEY_STORE_FULL_RETRY_AFTER_S)
    assert KEY_STORE_FULL_RETRY_AFTER_S > RETRY_AFTER_S, "memory frees as keys expire: slowly"
    for refusal in (quota, full):
        # Not "never will": another request with the same key may be in flight elsewhere.
        assert "did not add" in refusal.message
        assert "same Idempotency-Key" in refusal.message
        assert "never" not in refusal.message


TEMPLATE_CODE = re.compile(r'\\?"error\\?": \\?"([a-z_]+)\\?"')
USED_CODE = re.compile(r"ErrorCode\.([A-Z_]+)")


def test_the_balancer_answers_only_codes_of_the_enum() -> None:
    used = set(TEMPLATE_CODE.findall(conf.NGINX_TEMPLATE.read_text()))
    assert {"rate_limited", "bad_gateway", "uri_too_long"} <= used
    assert used <= {code.value for code in ErrorCode}


def test_every_code_of_the_enum_is_answered_by_a_node_or_the_balancer() -> None:
    node_sources = Path(errors.__file__).parent.glob("*.py")
    by_nodes = {
        name.lower() for path in node_sources for name in USED_CODE.findall(path.read_text())
    }
    by_balancer = set(TEMPLATE_CODE.findall(conf.NGINX_TEMPLATE.read_text()))
    assert {code.value for code in ErrorCode} == by_nodes | by_balancer
