"""The logging dictionary shared by Gunicorn, Uvicorn and the app, built without applying it (a
dictConfig here would close pytest's own log handlers)."""

from __future__ import annotations

import json
import logging
import logging.config
import sys
from datetime import datetime
from typing import Any

import pytest

from abacus.node.logging_config import REQUEST_ID, ContextFilter, logging_config


def record(message: str = "hello", **extra: Any) -> logging.LogRecord:
    made = logging.LogRecord("abacus.api", logging.WARNING, __file__, 1, message, None, None)
    made.__dict__.update(extra)
    return made


def formatted(fmt: str, made: logging.LogRecord) -> str:
    """The record as the configured handler would write it: filter, then formatter."""
    configurator = logging.config.DictConfigurator(logging_config("info", fmt, "node-9"))
    config = configurator.config
    assert configurator.configure_filter(config["filters"]["context"]).filter(made)
    formatter = configurator.configure_formatter(config["formatters"][fmt])
    return str(formatter.format(made))


def test_json_lines_carry_the_node_and_request_ids() -> None:
    token = REQUEST_ID.set("req-1")
    try:
        line = json.loads(formatted("json", record("sum reset", replaced_sum="12.5")))
    finally:
        REQUEST_ID.reset(token)
    assert line["level"] == "WARNING"
    assert line["logger"] == "abacus.api"
    assert line["message"] == "sum reset"
    assert (line["node_id"], line["request_id"]) == ("node-9", "req-1")
    assert line["replaced_sum"] == "12.5", "extra fields become fields of the line"
    assert datetime.fromisoformat(line["time"]).utcoffset() is not None


def test_text_lines_are_for_people() -> None:
    line = formatted("text", record("hello"))
    assert " WARNING node-9 abacus.api [None] hello" in line


def test_outside_a_request_the_request_id_is_none() -> None:
    made = record()
    assert ContextFilter("n").filter(made)
    assert made.__dict__["request_id"] is None


def test_a_request_id_given_by_the_caller_is_kept() -> None:
    made = record(request_id="given")
    token = REQUEST_ID.set("ambient")
    try:
        ContextFilter("n").filter(made)
    finally:
        REQUEST_ID.reset(token)
    assert made.__dict__["request_id"] == "given"


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_one_handler_to_stdout_and_no_duplicate_access_lines(fmt: str) -> None:
    config = logging_config("debug", fmt, "node-9")
    assert config["handlers"]["stdout"]["formatter"] == fmt
    assert config["handlers"]["stdout"]["filters"] == ["context"]
    stream = logging.config.DictConfigurator(config).convert(config["handlers"]["stdout"]["stream"])
    assert stream is sys.stdout
    assert config["root"] == {"level": "DEBUG", "handlers": ["stdout"]}
    loggers = config["loggers"]
    # The app writes one access line per request itself; the servers' own would be a second.
    for name in ("uvicorn.access", "gunicorn.access"):
        assert loggers[name] == {"level": "WARNING", "handlers": [], "propagate": False}
    for name in ("uvicorn.error", "gunicorn.error"):
        assert loggers[name] == {"level": "DEBUG", "handlers": ["stdout"], "propagate": False}
    assert config["disable_existing_loggers"] is False
