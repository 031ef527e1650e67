"""Concurrent adds for tests: many clients, one session each, every reply kept."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from tests.api_client import Api, Reply


def add_concurrently(
    url: str, numbers: Sequence[str], clients: int, keys: Sequence[str | None] | None = None
) -> list[Reply]:
    """Send one add per number from `clients` threads; replies in the order of `numbers`."""
    local = threading.local()
    sessions: list[Api] = []
    lock = threading.Lock()

    def client() -> Api:
        if not hasattr(local, "api"):
            local.api = Api(url)
            with lock:
                sessions.append(local.api)
        api: Api = local.api
        return api

    def send(index: int) -> Reply:
        return client().add(numbers[index], key=keys[index] if keys else None)

    try:
        with ThreadPoolExecutor(max_workers=clients) as pool:
            return list(pool.map(send, range(len(numbers))))
    finally:
        for api in sessions:
            api.close()
