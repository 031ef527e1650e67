"""A node's Gunicorn worker: uvicorn-worker's, with the node's own HTTP protocol and limits.

uvicorn-worker hands uvicorn only a few of Gunicorn's settings (keep-alive, backlog, the
forwarded addresses, ...): not the graceful timeout, and it picks uvicorn's stock protocol, which
has no head limit and no timeout before a request (see http_protocol.py).
"""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker

from abacus.node.http_protocol import AbacusHttpProtocol
from abacus.node.node_limits import CONCURRENCY_LIMIT, drain_timeout_s
from abacus.node.settings import Settings


class AbacusWorker(UvicornWorker):  # type: ignore[misc]  # uvicorn-worker has no type hints
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS,
        "http": AbacusHttpProtocol,
        "limit_concurrency": CONCURRENCY_LIMIT,
        # The node trusts X-Real-IP only with the balancer's secret (routes.py); uvicorn's
        # proxy-headers middleware would trust nobody (forwarded_allow_ips is empty) but still
        # run on every request.
        "proxy_headers": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bounded so that the worker's own shutdown (which answers every add it took) still ends
        # before Gunicorn's graceful_timeout, when the master kills it. The settings are those
        # gunicorn_conf.py checked in the master, which builds workers before it forks them.
        add_deadline_s = Settings.from_env().add_deadline_s
        self.config.timeout_graceful_shutdown = drain_timeout_s(
            self.cfg.graceful_timeout, add_deadline_s
        )
