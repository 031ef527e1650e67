"""The app factory: settings, the worker's Redis pool and committer, routes and error handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Protocol

from redis.asyncio import BlockingConnectionPool
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from abacus.node import memory_watch, redis_pool, replica_acks
from abacus.node.errors import ApiError, ErrorCode, error_response
from abacus.node.group_commit import GroupCommitter
from abacus.node.host_check import HostCheckMiddleware
from abacus.node.memory_watch import MemoryWatch
from abacus.node.protocol_answers import NODE_ID_KEY
from abacus.node.request_context import RequestContextMiddleware
from abacus.node.routes import ROUTES
from abacus.node.settings import Settings
from abacus.node.sum_read import SharedReads, read_stored_sum

log = logging.getLogger("abacus")

_HTTP_CODES = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # Starlette raises no other HTTPException here; should one come, it is still a known code.
    fallback = ErrorCode.BAD_REQUEST if exc.status_code < 500 else ErrorCode.INTERNAL_ERROR
    code = _HTTP_CODES.get(exc.status_code, fallback)
    message = {
        404: f"no such path: {request.url.path}",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, code, message, dict(exc.headers or {}))


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Starlette's outermost layer answers an unhandled exception itself, in plain text, before
    # RequestContextMiddleware sees it; this makes that answer the API's JSON error. The exception
    # still propagates, and the middleware logs it.
    return error_response(500, ErrorCode.INTERNAL_ERROR, "internal error")


class PoolFactory(Protocol):
    """Makes the worker's Redis pools; tests pass one whose pools can never reach a real Redis."""

    def __call__(
        self, settings: Settings, *, socket_timeout: float | None = ...
    ) -> BlockingConnectionPool: ...


def create_app(
    settings: Settings | None = None, *, make_pool: PoolFactory = redis_pool.make_pool
) -> ASGIApp:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
        pool = make_pool(settings)
        commit_pool = make_pool(settings, socket_timeout=None)
        app.state.settings = settings
        app.state.redis = redis_pool.make_client(pool)
        app.state.reads = SharedReads(
            partial(
                read_stored_sum,
                app.state.redis,
                settings.sum_key,
                replicated=bool(settings.redis_sentinels),
                replicas=settings.min_replica_acks,
            )
        )
        app.state.memory = MemoryWatch(settings.key_store_limit)
        # Through the ordinary pool: the commit lane's connection never waits behind it.
        stop_polling = asyncio.Event()
        poller = asyncio.create_task(
            memory_watch.poll(app.state.redis, app.state.memory, stop_polling)
        )
        app.state.committer = GroupCommitter(
            commit_pool,
            sum_key=settings.sum_key,
            node_id=settings.node_id,
            max_batch=settings.max_batch,
            deadline_s=settings.add_deadline_s,
            memory=app.state.memory,
            acks=replica_acks.for_settings(settings),
            turns=settings.commit_turns,
        )
        if settings.admin_token is None:
            log.warning("ABACUS_ADMIN_TOKEN is not set: anyone can reset the sum")
        log.info("node started", extra={**_redis_location(settings), "key": settings.key})
        try:
            # The server's state: its own answers (protocol_answers.py) carry the node id.
            yield {NODE_ID_KEY: settings.node_id}
        finally:
            stop_polling.set()
            # Answer every queued add before the pool goes: a graceful stop loses nothing.
            await app.state.committer.close()
            await poller
            await redis_pool.close_pool(commit_pool)
            await redis_pool.close_pool(pool)
            log.info("node stopped")

    app = Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    # Starlette answers `/abacus/sum/` with a redirect built from the client's Host header: an
    # open redirect, and a 307 no client of this API expects. A path is exact here, else 404.
    app.router.redirect_slashes = False
    known_paths = frozenset(route.path for route in ROUTES if isinstance(route, Route))
    return RequestContextMiddleware(
        HostCheckMiddleware(app, settings),
        settings.node_id,
        known_paths,
        access_log=settings.access_log,
    )


def _redis_location(settings: Settings) -> dict[str, object]:
    """Where the node looks for Redis, for its start line (no password)."""
    location: dict[str, object] = {"min_replica_acks": settings.min_replica_acks}
    if settings.redis_sentinels:
        sentinels = [f"{host}:{port}" for host, port in settings.redis_sentinels]
        return {**location, "redis_sentinels": sentinels, "master": settings.redis_sentinel_master}
    return {**location, "redis_url": _without_password(settings.redis_url)}


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    _credentials, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{'***' + at if at else ''}{host}"
