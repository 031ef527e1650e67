"""Gunicorn settings of a node, shared by the local stack (scripts/stack.py) and the image.

Everything comes from the environment (the spec's table), read through app.settings so that a bad
value stops the master at once with a clear message instead of crash-looping its workers.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

# Gunicorn reads this file before it changes directory: make the app importable from anywhere.
_ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(_ROOT))
chdir = str(_ROOT)

from app.logging_config import logging_config  # noqa: E402
from app.node_limits import GRACEFUL_TIMEOUT_S, KEEPALIVE_S  # noqa: E402
from app.settings import Settings, SettingsError  # noqa: E402

try:
    _settings = Settings.from_env()
except SettingsError as exc:
    # One line that says what to fix; Gunicorn would print its own traceback around it.
    sys.exit(f"abacus: {exc}")

wsgi_app = "app.main:create_app()"
# uvicorn-worker's worker with the node's own HTTP protocol and limits (app/worker.py).
worker_class = "app.worker.AbacusWorker"
workers = _settings.web_concurrency
bind = [f"{_settings.host}:{_settings.port}"]
backlog = 2048
proc_name = f"abacus-{_settings.node_id}"

# Longer than nginx's upstream keepalive_timeout (see app/node_limits.py).
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

# prometheus_client keeps each worker's metrics in files here, and /metrics adds them up. It is
# set before any worker imports the client; a directory left by an earlier run is emptied.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
    prefix=f"abacus-metrics-{_settings.node_id}-"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server: Any) -> None:
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    Path(_metrics_dir).mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    # Imported here, in the master, only once the environment above is in place.
    from prometheus_client import multiprocess  # noqa: PLC0415

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
