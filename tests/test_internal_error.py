"""An unexpected exception in a real node (Gunicorn, its worker, the app): JSON 500 to the
client, the traceback in the node's JSON log, and the worker goes on serving."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.api_client import Api
from tests.raising_app import SECRET
from tests.single_node import single_node
from tests.waiting import wait_until

pytestmark = pytest.mark.stack


def test_an_unexpected_exception_is_a_json_500_and_a_logged_traceback(tmp_path: Path) -> None:
    # The app spec on Gunicorn's command line overrides abacus/node/gunicorn_conf.py's wsgi_app.
    with single_node(tmp_path, "tests.raising_app:create_app()") as node:
        (worker,) = node.worker_pids()
        api = Api(f"http://127.0.0.1:{node.port}")
        replies = [
            api.request("GET", "/abacus/sum", headers={"X-Request-ID": f"boom-{n}"}) for n in (1, 2)
        ]
        for n, reply in enumerate(replies, 1):
            assert reply.status == 500
            assert reply.headers["Content-Type"] == "application/json"
            assert reply.body == {"error": "internal_error", "message": "internal error"}
            assert SECRET not in reply.text
            assert reply.headers["X-Request-ID"] == f"boom-{n}"
            assert reply.headers["X-Node-Id"] == "node-solo"
        # The worker that raised goes on serving: the same process answers what needs no Redis.
        assert api.request("GET", "/openapi.json").status == 200
        assert node.worker_pids() == [worker]

        def tracebacks() -> list[dict[str, object]]:
            return [
                record
                for record in node.log_records()
                if record.get("logger") == "abacus.error"
                and record.get("request_id") in ("boom-1", "boom-2")
            ]

        assert wait_until(lambda: len(tracebacks()) == 2), "one error line per request"
        for record in tracebacks():
            assert record["level"] == "ERROR"
            assert record["node_id"] == "node-solo"
            trace = str(record["exc_info"])
            assert trace.startswith("Traceback (most recent call last):")
            assert re.search(rf"RuntimeError: {SECRET}$", trace)
        # The traceback is inside its JSON line, not spread over lines of plain text.
        lines = node.log.read_text().splitlines()
        assert not [line for line in lines if line.startswith(("Traceback", "  File "))]
