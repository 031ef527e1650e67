"""Gunicorn settings of a node, shared by the local stack and the image: `gunicorn -c
python:abacus.node.gunicorn_conf` (abacus.conf.GUNICORN_CONFIG).

Everything comes from the environment (docs/configuration.md), read through abacus.node.settings
so that a bad value stops the master at once with a clear message instead of crash-looping its
workers. Nothing else happens on import: the metrics directory is set up in `on_starting`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from abacus.node.logging_config import logging_config
from abacus.node.node_limits import GRACEFUL_TIMEOUT_S, KEEPALIVE_S
from abacus.node.settings import Settings, SettingsError

try:
    _settings = Settings.from_env()
except SettingsError as exc:
    # One line that says what to fix; Gunicorn would print its own traceback around it.
    sys.exit(f"abacus: {exc}")

wsgi_app = "abacus.node.main:create_app()"
# uvicorn-worker's worker with the node's own HTTP protocol and limits (worker.py).
worker_class = "abacus.node.worker.AbacusWorker"
workers = _settings.web_concurrency
bind = [f"{_settings.host}:{_settings.port}"]
backlog = 2048
proc_name = f"abacus-{_settings.node_id}"

# Longer than nginx's upstream keepalive_timeout (see node_limits.py).
keepalive = KEEPALIVE_S
# On SIGTERM: stop accepting, finish requests in flight and commit queued adds, then exit.
graceful_timeout = GRACEFUL_TIMEOUT_S
timeout = 30
# Trust no proxy headers: the nodes read the balancer's retry key only from its own address,
# and X-Forwarded-For must not be able to pose as that address.
forwarded_allow_ips = ""

# Gunicorn's control socket has one default path per user, which three nodes would share.
control_socket_disable = True

accesslog = None
logconfig_dict = logging_config(_settings.log_level, _settings.log_format, _settings.node_id)

# Workers' heartbeat files: in memory, also on a read-only root filesystem.
if Path("/dev/shm").is_dir():  # noqa: S108
    worker_tmp_dir = "/dev/shm"  # noqa: S108


def on_starting(server: Any) -> None:
    """In the master, before any worker exists: prometheus_client keeps each worker's metrics in
    files in PROMETHEUS_MULTIPROC_DIR, and /metrics adds them up. The workers inherit the
    variable; a directory left by an earlier run is emptied."""
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
        prefix=f"abacus-metrics-{_settings.node_id}-"
    )
    shutil.rmtree(metrics_dir, ignore_errors=True)
    Path(metrics_dir).mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir


def child_exit(server: Any, worker: Any) -> None:
    # Imported here, in the master, only once the environment above is in place.
    from prometheus_client import multiprocess  # noqa: PLC0415

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
