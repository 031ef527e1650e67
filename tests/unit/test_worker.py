"""The Gunicorn worker: what it gives uvicorn beyond what uvicorn-worker does."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from gunicorn import glogging
from gunicorn.config import Config as GunicornConfig
from gunicorn.util import load_class

from abacus.node.http_protocol import AbacusHttpProtocol
from abacus.node.node_limits import CONCURRENCY_LIMIT, drain_timeout_s
from abacus.node.settings import RESOLVE_GRACE_S
from abacus.node.worker import AbacusWorker


@pytest.fixture
def uvicorn_loggers() -> Iterator[None]:
    """uvicorn-worker points uvicorn's loggers at Gunicorn's handlers: undone after the test."""
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "uvicorn.access")]
    saved = [(lg.handlers, lg.level, lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
            logger.handlers, logger.level, logger.propagate = handlers, level, propagate


@pytest.mark.usefixtures("uvicorn_loggers")
@pytest.mark.parametrize(("deadline_ms", "graceful_s"), [("3000", 20), ("10000", 20), ("500", 60)])
def test_the_worker_gives_uvicorn_the_node_s_protocol_and_limits(
    monkeypatch: pytest.MonkeyPatch, deadline_ms: str, graceful_s: int
) -> None:
    monkeypatch.setenv("ABACUS_ADD_DEADLINE_MS", deadline_ms)
    cfg = GunicornConfig()
    cfg.set("graceful_timeout", graceful_s)
    cfg.set("keepalive", 75)
    worker = AbacusWorker(0, os.getpid(), [], None, 30, cfg, glogging.Logger(cfg))
    try:
        assert worker.config.http is AbacusHttpProtocol
        assert worker.config.limit_concurrency == CONCURRENCY_LIMIT
        assert worker.config.timeout_keep_alive == 75, "Gunicorn's keep-alive, as before"
        drain = worker.config.timeout_graceful_shutdown
        assert drain == drain_timeout_s(graceful_s, int(deadline_ms) / 1000)
        # The app's shutdown (at most a deadline and the grace) still fits before the kill.
        assert drain + int(deadline_ms) / 1000 + RESOLVE_GRACE_S < graceful_s
    finally:
        worker.tmp.close()


def test_gunicorn_can_load_the_worker_by_the_name_gunicorn_conf_gives() -> None:
    assert load_class("abacus.node.worker.AbacusWorker") is AbacusWorker
