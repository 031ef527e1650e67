"""Running redis-server with the shared configuration (abacus/conf/redis.conf)."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from abacus import conf
from abacus.local_stack import processes
from abacus.local_stack.errors import StackError
from abacus.local_stack.processes import Process

REDIS_CONF = conf.REDIS_CONF


def command(redis_server: str, port: int, data_dir: Path) -> list[str]:
    return [
        redis_server,
        str(REDIS_CONF),
        "--port", str(port),
        "--dir", str(data_dir),
        "--daemonize", "no",
        "--logfile", "",
    ]  # fmt: skip


def wait_ready(url: str, process: Process, log_path: Path, timeout: float = 20.0) -> None:
    """Until Redis answers PING (it loads its append-only file first)."""
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline or not processes.is_alive(process):
                raise StackError(f"Redis did not start; see {log_path}")
            time.sleep(0.05)
    finally:
        client.close()
