"""abacus_client's retry rules, one test per row of docs/client.md's table, on both clients.

Against a scripted service in process (tests/client_fakes.py): no sockets, and no real waiting;
the clients' clock and sleep are the service's, so deadlines and backoff are exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from abacus_client import ErrorCode, OutcomeUnknown, ServiceError, TransportError
from tests.client_fakes import (
    AsyncDriver,
    Driver,
    Failure,
    FakeService,
    Reply,
    Step,
    SyncDriver,
    added,
    default_options,
    error,
)

MakeDriver = Callable[..., Driver]


@pytest.fixture(params=["sync", "async"])
def make(request: pytest.FixtureRequest) -> Iterator[MakeDriver]:
    """make(*steps, then=..., **client options) -> a driver of the parametrized client."""
    made: list[SyncDriver | AsyncDriver] = []

    def build(*steps: Step, then: Step | None = None, **options: Any) -> Driver:
        service = FakeService(*steps, then=then)
        kind = SyncDriver if request.param == "sync" else AsyncDriver
        driver = kind(service, default_options(**options))
        made.append(driver)
        return driver

    yield build
    for driver in made:
        driver.close()


def visible_ascii(key: str | None) -> bool:
    return key is not None and 1 <= len(key) <= 255 and all("!" <= c <= "~" for c in key)


# -- 200 ------------------------------------------------------------------------------------


def test_an_add_returns_exact_decimals_and_sends_a_fresh_key(make: MakeDriver) -> None:
    client = make(added("100000000000000000000.3", "0.1", node="node-2"))
    result = client.add(Decimal("0.1"))
    assert result.new_sum == Decimal("100000000000000000000.3")
    assert result.added == Decimal("0.1")
    assert result.node_id == "node-2"
    assert result.timestamp == datetime(2026, 11, 27, 18, 30, 0, 123456, tzinfo=UTC)
    assert result.replayed is False
    assert result.attempts == 1
    (sent,) = client.service.sent
    assert (sent.method, sent.path) == ("POST", "/abacus/number")
    assert sent.body == b'{"number": 0.1}'
    assert sent.headers["content-type"] == "application/json"
    assert visible_ascii(sent.key), sent.key
    assert result.key == sent.key


def test_fresh_keys_differ_and_a_callers_key_is_sent_as_given(make: MakeDriver) -> None:
    client = make(then=added("1", "1"))
    first, second = client.add(1), client.add(1)
    assert first.key != second.key
    assert client.add("1", key="order-1234").key == "order-1234"
    assert client.service.keys[-1] == "order-1234"


def test_a_replay_says_so(make: MakeDriver) -> None:
    client = make(added("5.3", "5", **{"Idempotent-Replayed": "true"}))
    result = client.add(5, key="order-1234")
    assert result.replayed is True
    assert result.new_sum == Decimal("5.3")


@pytest.mark.parametrize("number", [0.1, True, None])
def test_a_float_or_anything_inexact_is_refused_before_sending(
    make: MakeDriver, number: Any
) -> None:
    client = make()
    with pytest.raises(TypeError):
        client.add(number)
    assert client.service.sent == []


@pytest.mark.parametrize("number", ["NaN", "Infinity", "0x10"])
def test_a_string_that_is_no_finite_number_is_refused(make: MakeDriver, number: str) -> None:
    client = make()
    with pytest.raises(ValueError, match="number"):
        client.add(number)
    assert client.service.sent == []


# -- open outcomes: asked again with the same key -------------------------------------------

OPEN: dict[str, Step] = {
    "503 outcome_unknown": error(503, "outcome_unknown", retry_after=1),
    "502 bad_gateway": error(502, "bad_gateway", retry_after=1),
    "504 gateway_timeout": error(504, "gateway_timeout", retry_after=1),
    "500 internal_error": error(500, "internal_error"),
    "502 from something else": Reply(502, "<html>Bad Gateway</html>"),
    "a timeout": Failure.TIMEOUT,
    "a dropped connection": Failure.DROPPED,
    "a 200 cut short": Reply(200, '{"new_sum": 1'),
}


@pytest.mark.parametrize("first", OPEN.values(), ids=OPEN.keys())
def test_an_open_outcome_is_asked_again_with_the_same_key(make: MakeDriver, first: Step) -> None:
    client = make(first, added("3", "3", **{"Idempotent-Replayed": "true"}))
    result = client.add(3)
    assert result.replayed is True
    assert result.attempts == 2
    first_key, second_key = client.service.keys
    assert first_key == second_key == result.key
    if isinstance(first, Reply) and "Retry-After" in first.headers:
        assert client.service.slept[0] >= 1, "Retry-After respected"


# -- refusals that changed nothing and may pass ---------------------------------------------

PASSING: dict[str, Step] = {
    "503 unavailable": error(503, "unavailable", retry_after=1),
    "429 rate_limited": error(429, "rate_limited", retry_after=1),
    "429 key_quota_exhausted": error(429, "key_quota_exhausted", retry_after=5),
    "503 key_store_full": error(503, "key_store_full", retry_after=2),
    "a connection refused": Failure.REFUSED,
}


@pytest.mark.parametrize("first", PASSING.values(), ids=PASSING.keys())
def test_a_passing_refusal_is_asked_again_with_the_same_key_after_retry_after(
    make: MakeDriver, first: Step
) -> None:
    client = make(first, added("3", "3"))
    result = client.add(3)
    assert result.replayed is False
    first_key, second_key = client.service.keys
    assert first_key == second_key == result.key
    (slept,) = client.service.slept
    if isinstance(first, Reply):
        assert slept >= float(first.headers["Retry-After"])


# -- a fenced key ----------------------------------------------------------------------------


def test_a_fenced_key_is_raised_by_default_with_its_key(make: MakeDriver) -> None:
    client = make(error(503, "outcome_unknown"), error(409, "idempotency_key_refused"))
    with pytest.raises(ServiceError) as caught:
        client.add(3)
    assert caught.value.code is ErrorCode.IDEMPOTENCY_KEY_REFUSED
    assert caught.value.status == 409
    assert caught.value.key == client.service.keys[0] == client.service.keys[1]
    assert len(client.service.sent) == 2, "never a new key unasked"


@pytest.mark.parametrize("where", ["client", "call"])
def test_a_fenced_key_is_replaced_when_the_caller_allows_it(make: MakeDriver, where: str) -> None:
    options = {"new_key_if_fenced": True} if where == "client" else {}
    client = make(error(409, "idempotency_key_refused"), added("3", "3"), **options)
    result = client.add(3, new_key_if_fenced=True if where == "call" else None)
    old, new = client.service.keys
    assert old != new
    assert result.key == new
    assert visible_ascii(new)


def test_a_fenced_callers_key_is_not_replaced_when_the_call_says_no(make: MakeDriver) -> None:
    client = make(error(409, "idempotency_key_refused"), new_key_if_fenced=True)
    with pytest.raises(ServiceError) as caught:
        client.add(3, key="order-1", new_key_if_fenced=False)
    assert caught.value.key == "order-1"


# -- the deadline ----------------------------------------------------------------------------


def test_the_deadline_ends_an_open_outcome_with_outcome_unknown_carrying_the_key(
    make: MakeDriver,
) -> None:
    client = make(then=error(503, "outcome_unknown", retry_after=1), deadline=10.0)
    started = client.service.now
    with pytest.raises(OutcomeUnknown) as caught:
        client.add(7)
    keys = set(client.service.keys)
    assert keys == {caught.value.key}, "one key throughout"
    assert caught.value.attempts == len(client.service.sent) > 2
    assert isinstance(caught.value.last, ServiceError)
    assert caught.value.last.code is ErrorCode.OUTCOME_UNKNOWN
    assert client.service.now - started <= 10.0, "no wait past the deadline"
    assert str(caught.value.key) in str(caught.value)


def test_an_outcome_unknown_is_settled_by_asking_again_with_its_key(make: MakeDriver) -> None:
    client = make(
        Failure.TIMEOUT,
        Failure.TIMEOUT,
        added("7", "7", **{"Idempotent-Replayed": "true"}),
        deadline=5.0,
        timeout=3.0,
    )
    with pytest.raises(OutcomeUnknown) as caught:
        client.add(7)
    settled = client.add(7, key=caught.value.key)
    assert settled.replayed is True
    assert settled.key == caught.value.key
    assert len(set(client.service.keys)) == 1


def test_a_per_call_deadline_overrides_the_clients(make: MakeDriver) -> None:
    client = make(then=error(503, "outcome_unknown"), deadline=100.0)
    started = client.service.now
    with pytest.raises(OutcomeUnknown):
        client.add(7, deadline=2.0)
    assert client.service.now - started <= 2.0


def test_each_attempt_waits_at_most_its_timeout_and_the_time_left(make: MakeDriver) -> None:
    client = make(then=Failure.TIMEOUT, deadline=7.0, timeout=3.0)
    started = client.service.now
    with pytest.raises(OutcomeUnknown):
        client.add(1)
    for sent in client.service.sent:
        assert sent.timeout is not None
        assert sent.timeout <= 3.0
        assert sent.at + sent.timeout <= started + 7.0 + 1e-9
    last = client.service.sent[-1].timeout
    assert last is not None
    assert last < 3.0, "the last attempt got what was left"


def test_only_refusals_that_changed_nothing_end_in_that_refusal(make: MakeDriver) -> None:
    client = make(then=error(503, "unavailable", retry_after=1), deadline=5.0)
    with pytest.raises(ServiceError) as caught:
        client.add(1)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.code is ErrorCode.UNAVAILABLE
    assert caught.value.key == client.service.keys[0]


def test_an_open_attempt_stays_open_through_later_refusals(make: MakeDriver) -> None:
    client = make(Failure.DROPPED, then=error(503, "unavailable", retry_after=1), deadline=5.0)
    with pytest.raises(OutcomeUnknown) as caught:
        client.add(1)
    assert caught.value.key == client.service.keys[0]


def test_a_service_never_reached_ends_in_a_transport_error(make: MakeDriver) -> None:
    client = make(then=Failure.REFUSED, deadline=3.0)
    with pytest.raises(TransportError) as caught:
        client.add(1)
    assert caught.value.sent is False
    assert len(client.service.sent) > 1, "a refused connection is tried again"


def test_a_retry_after_past_the_deadline_ends_the_call_at_once(make: MakeDriver) -> None:
    client = make(error(503, "key_store_full", retry_after=10), deadline=5.0)
    with pytest.raises(ServiceError) as caught:
        client.add(1)
    assert caught.value.code is ErrorCode.KEY_STORE_FULL
    assert client.service.slept == [], "no sleep that would end past the deadline"


# -- reads, resets, health -------------------------------------------------------------------


def test_a_read_is_asked_again_until_it_answers(make: MakeDriver) -> None:
    body = '{"sum": 0.3, "timestamp": "2026-11-27T18:32:00+00:00", "node_id": "node-1"}'
    client = make(
        error(503, "unavailable", retry_after=1), Failure.TIMEOUT, error(502, "bad_gateway"),
        Reply(200, body),
    )  # fmt: skip
    result = client.sum()
    assert result.sum == Decimal("0.3")
    assert result.node_id == "node-1"
    assert [sent.path for sent in client.service.sent] == ["/abacus/sum"] * 4


def test_a_read_ends_in_its_last_failure(make: MakeDriver) -> None:
    client = make(then=error(503, "unavailable", retry_after=1), deadline=3.0)
    with pytest.raises(ServiceError) as caught:
        client.sum()
    assert caught.value.code is ErrorCode.UNAVAILABLE


def test_a_reset_sends_its_token_and_is_repeated_only_when_nothing_was_done(
    make: MakeDriver,
) -> None:
    body = '{"message": "Sum successfully reset to 0", "timestamp": "%s", "node_id": "node-2"}'
    client = make(
        error(503, "unavailable", retry_after=1),
        Reply(200, body % "2026-11-27T18:33:00+00:00"),
    )
    result = client.reset("s3cret")
    assert result.message == "Sum successfully reset to 0"
    assert [sent.headers["authorization"] for sent in client.service.sent] == ["Bearer s3cret"] * 2
    assert {sent.method for sent in client.service.sent} == {"DELETE"}


@pytest.mark.parametrize("first", [error(502, "bad_gateway"), Failure.TIMEOUT])
def test_a_reset_that_may_have_happened_is_not_repeated(make: MakeDriver, first: Step) -> None:
    client = make(first, then=error(503, "unavailable"))
    with pytest.raises(OutcomeUnknown) as caught:
        client.reset("s3cret")
    assert caught.value.key is None
    assert len(client.service.sent) == 1, "a second reset could wipe adds counted since"


def test_a_refused_reset_is_raised(make: MakeDriver) -> None:
    client = make(error(401, "unauthorized"))
    with pytest.raises(ServiceError) as caught:
        client.reset()
    assert caught.value.code is ErrorCode.UNAUTHORIZED
    assert "authorization" not in client.service.sent[0].headers


def test_health_answers_unhealthy_as_a_result_and_asks_once(make: MakeDriver) -> None:
    body = {
        "status": "unhealthy", "node_id": "node-3", "redis_connected": False,
        "current_sum": None, "stats": None, "memory_used_ratio": None, "keyed_adds": "accepted",
    }  # fmt: skip
    client = make(Reply(503, body, {"X-Node-Id": "node-3", "Retry-After": "1"}))
    health = client.health()
    assert health.healthy is False
    assert health.redis_connected is False
    assert health.node_id == "node-3"
    assert len(client.service.sent) == 1


def test_health_without_a_node_is_an_error(make: MakeDriver) -> None:
    client = make(error(503, "unavailable", retry_after=1))
    with pytest.raises(ServiceError) as caught:
        client.health()
    assert caught.value.code is ErrorCode.UNAVAILABLE
    assert len(client.service.sent) == 1
