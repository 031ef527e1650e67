"""Metrics that add up across workers, JSON logs that carry the client's request id, OpenAPI."""

from __future__ import annotations

import json

import pytest

from abacus.local_stack import LocalStack
from tests.api_client import Api
from tests.load import add_concurrently
from tests.metrics_text import scrape, value
from tests.waiting import wait_for_log

pytestmark = pytest.mark.stack

ANSWERED = {"method": "POST", "route": "/abacus/number", "status": "200"}


def test_metrics_add_up_per_node_across_workers(api: Api, stack: LocalStack) -> None:
    before = {p: scrape(p) for p in stack.config.node_ports}
    numbers = [str(n) for n in range(1, 601)]
    replies = add_concurrently(stack.config.url, numbers, clients=24)
    assert all(r.status == 200 for r in replies)
    served = {node: 0 for node in stack.node_names()}
    for reply in replies:
        served[reply.body["node_id"]] += 1
    total_committed = 0.0
    for index, port in enumerate(stack.config.node_ports):
        after = scrape(port)
        committed = value(after, "abacus_adds_committed_total") - value(
            before[port], "abacus_adds_committed_total"
        )
        answered = value(after, "abacus_http_requests_total", **ANSWERED) - value(
            before[port], "abacus_http_requests_total", **ANSWERED
        )
        node = stack.node_names()[index]
        assert committed == served[node], f"{node}: adds counted = adds acknowledged"
        assert answered == served[node]
        total_committed += committed
        assert "abacus_commit_batch_size_bucket" in after
        assert "abacus_http_request_duration_seconds_bucket" in after
    assert total_committed == len(numbers)


def test_every_log_line_is_json_with_the_request_id(api: Api, stack: LocalStack) -> None:
    reply = api.add(1)
    request_id = reply.headers["X-Request-ID"]
    node_log = stack.log_path(reply.body["node_id"])
    wait_for_log(node_log, request_id)  # written just after the response; asserted below
    records = [json.loads(line) for line in node_log.read_text().splitlines() if line.strip()]
    assert records, "the node logs"
    for record in records:
        assert {"time", "level", "logger", "message", "node_id"} <= set(record)
    access = [r for r in records if r.get("request_id") == request_id]
    assert len(access) == 1
    (line,) = access
    assert line["method"] == "POST"
    assert line["path"] == "/abacus/number"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert line["batch_size"] >= 1
    assert "conflicts" in line
    nginx_lines = [
        json.loads(x) for x in stack.log_path("nginx").read_text().splitlines() if x.startswith("{")
    ]
    assert any(n["request_id"] == request_id and n["status"] == 200 for n in nginx_lines)


def test_openapi_document_is_served(api: Api) -> None:
    reply = api.request("GET", "/openapi.json")
    assert reply.status == 200
    document = reply.body
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) >= {"/abacus/number", "/abacus/sum", "/health", "/metrics"}
    assert set(document["paths"]["/abacus/sum"]) == {"get", "delete"}
