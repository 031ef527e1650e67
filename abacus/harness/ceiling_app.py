"""The benchmark's ceiling: the leanest app of the same API shape on the project's own tier.

`bench_stacks.py --compare ceiling` runs it in place of the node app, under the same Gunicorn
configuration and worker (uvloop, httptools, the node's HTTP protocol), behind the same nginx and
against the same Redis, so that only the app differs. An add is one INCRBYFLOAT and a read one
GET, on a pool made exactly as the nodes make theirs: no group commit, no records, no host or
secret checks, no logging, no metrics. It is never served in production, and it does not keep the
API's promises (an add's outcome after a lost reply is unknowable); it only shows how far the
tier itself goes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from abacus.node import redis_pool
from abacus.node.protocol_answers import NODE_ID_KEY
from abacus.node.settings import Settings
from abacus.node.timestamps import timestamp

# What Gunicorn serves instead of the node app (StackConfig.app): a factory, like the node's.
CEILING_APP = "abacus.harness.ceiling_app:create_app()"


def _json(body: str) -> Response:
    return Response(body, media_type="application/json")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    sum_key = settings.sum_key
    # Encoded once: the node's answers carry its id too, and the ceiling must not do less work
    # on the wire than the shape requires, only less around it.
    node_id = json.dumps(settings.node_id)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
        pool = redis_pool.make_pool(settings)
        app.state.redis = redis_pool.make_client(pool)
        try:
            # The node protocol's own answers (400, 431, 503) carry the node id, as a node's do.
            yield {NODE_ID_KEY: settings.node_id}
        finally:
            await redis_pool.close_pool(pool)

    async def add_number(request: Request) -> Response:
        number = json.loads(await request.body())["number"]
        # INCRBYFLOAT, not INCRBY: the nodes store a decimal, and any number the API takes adds.
        # redis-py hands its answer back as a float.
        new_sum = await request.app.state.redis.incrbyfloat(sum_key, number)
        return _json(
            f'{{"new_sum": {json.dumps(new_sum)}, "added": {json.dumps(number)}, '
            f'"timestamp": "{timestamp()}", "node_id": {node_id}}}'
        )

    async def read_sum(request: Request) -> Response:
        raw = await request.app.state.redis.get(sum_key)
        stored = "0" if raw is None else raw.decode()
        return _json(f'{{"sum": {stored}, "timestamp": "{timestamp()}", "node_id": {node_id}}}')

    async def health(request: Request) -> Response:
        # The stack's readiness check: up once Redis answers, as a node's /health says.
        await request.app.state.redis.ping()
        return _json(f'{{"status": "healthy", "node_id": {node_id}}}')

    return Starlette(
        routes=[
            Route("/abacus/number", add_number, methods=["POST"]),
            Route("/abacus/sum", read_sum, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
