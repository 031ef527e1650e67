"""How abacus_client reads an answer: exact numbers, the headers the rules use, results; and the
outcome table it shares with the consistency checker."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from requests.structures import CaseInsensitiveDict

from abacus.harness.client import classify
from abacus.harness.history import Outcome
from abacus_client import ErrorCode
from abacus_client.answers import read_answer, retry_after
from abacus_client.json_numbers import as_decimal, parse_json, render
from abacus_client.outcomes import AddOutcome, add_outcome
from abacus_client.results import MalformedAnswer, add_result, health


def headers(**values: str) -> CaseInsensitiveDict[str]:
    return CaseInsensitiveDict({name.replace("_", "-"): v for name, v in values.items()})


def test_numbers_are_exact_decimals_both_ways() -> None:
    body = parse_json('{"sum": 100000000000000000001, "x": 0.3, "y": 1e2}')
    assert body["sum"] == Decimal(10**20 + 1)
    assert body["x"] == Decimal("0.3")
    assert isinstance(body["y"], Decimal)
    assert [render(Decimal(v)) for v in ("1E+2", "0.30", "-0.000001", "42")] == [
        "100", "0.3", "-0.000001", "42",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="NaN"):
        parse_json('{"sum": NaN}')


def test_as_decimal_takes_exact_inputs_only() -> None:
    assert as_decimal("0.1") == Decimal("0.1")
    assert as_decimal(7) == Decimal(7)
    with pytest.raises(TypeError):
        as_decimal(0.1)  # type: ignore[arg-type]


def test_an_answer_keeps_what_the_rules_need() -> None:
    answer = read_answer(
        503,
        headers(Retry_After="1", X_Node_Id="node-2", X_Request_ID="abc"),
        '{"error": "outcome_unknown", "message": "may have counted"}',
    )
    assert answer.code is ErrorCode.OUTCOME_UNKNOWN
    assert answer.message == "may have counted"
    assert answer.retry_after == 1.0
    assert (answer.node_id, answer.request_id, answer.replayed) == ("node-2", "abc", False)


def test_an_answer_that_is_not_json_has_no_code() -> None:
    answer = read_answer(502, headers(), "<html>Bad Gateway</html>", "Bad Gateway")
    assert answer.body is None
    assert answer.code is None
    assert answer.message is None


@pytest.mark.parametrize(
    ("value", "seconds"), [("1", 1.0), (" 10 ", 10.0), (None, None), ("-1", None),
                           ("Wed, 21 Oct 2026 07:28:00 GMT", None), ("1.5", None)],
)  # fmt: skip
def test_retry_after_in_whole_seconds_only(value: str | None, seconds: float | None) -> None:
    assert retry_after(value) == seconds


def test_the_node_is_the_header_else_the_body() -> None:
    text = '{"new_sum": 1, "added": 1, "timestamp": "2026-11-27T18:30:00+00:00", "node_id": "b"}'
    assert add_result(read_answer(200, headers(X_Node_Id="a"), text), "k", 1).node_id == "a"
    result = add_result(read_answer(200, headers(Idempotent_Replayed="TRUE"), text), "k", 1)
    assert result.node_id == "b"
    assert result.replayed is True


@pytest.mark.parametrize(
    "text",
    [
        '{"new_sum": "1", "added": 1, "timestamp": "2026-11-27T18:30:00+00:00", "node_id": "n"}',
        '{"new_sum": 1, "added": 1, "timestamp": "yesterday", "node_id": "n"}',
        '{"new_sum": 1, "added": 1, "node_id": "n"}',
        '{"new_sum": 1, "added": 1, "timestamp": "2026-11-27T18:30:00+00:00"}',
        '{"new_sum": 1',
    ],
)
def test_a_200_that_breaks_the_contract_is_malformed(text: str) -> None:
    with pytest.raises(MalformedAnswer):
        add_result(read_answer(200, headers(), text), "k", 1)


def test_health_reads_both_answers() -> None:
    healthy = health(read_answer(200, headers(), '{"status": "healthy", "node_id": "n", '
                                 '"redis_connected": true, "current_sum": 0.5, '
                                 '"keyed_adds": "paused"}'))  # fmt: skip
    assert healthy.healthy is True
    assert healthy.current_sum == Decimal("0.5")
    assert healthy.keyed_adds == "paused"


# The outcome table: the client's reading and the checker's are one.
STATUSES = [200, 400, 401, 409, 421, 422, 429, 500, 502, 503, 504]
CODES = [None, *ErrorCode]
CHECKER = {
    AddOutcome.COUNTED: Outcome.OK,
    AddOutcome.NOT_COUNTED: Outcome.FAILED,
    AddOutcome.NOT_BY_THIS_REQUEST: Outcome.UNKNOWN,
    AddOutcome.OPEN: Outcome.UNKNOWN,
}


def test_the_checker_classifies_answers_by_the_clients_outcome_table() -> None:
    for status, code in itertools.product(STATUSES, CODES):
        assert classify(status, code) is CHECKER[add_outcome(status, code)], (status, code)


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (200, None, AddOutcome.COUNTED),
        (503, "unavailable", AddOutcome.NOT_COUNTED),
        (409, "idempotency_key_refused", AddOutcome.NOT_COUNTED),
        (429, "rate_limited", AddOutcome.NOT_COUNTED),
        (429, "key_quota_exhausted", AddOutcome.NOT_BY_THIS_REQUEST),
        (503, "key_store_full", AddOutcome.NOT_BY_THIS_REQUEST),
        (503, "outcome_unknown", AddOutcome.OPEN),
        (503, None, AddOutcome.OPEN),
        (502, "bad_gateway", AddOutcome.OPEN),
        (504, "gateway_timeout", AddOutcome.OPEN),
        (500, "internal_error", AddOutcome.OPEN),
    ],
)
def test_the_outcome_table(status: int, code: str | None, outcome: AddOutcome) -> None:
    assert add_outcome(status, code) is outcome
