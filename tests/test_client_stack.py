"""abacus_client against a real local stack through a node SIGKILLed and Redis SIGSTOPped for
longer than the clients' deadline: every add returns or raises OutcomeUnknown with its key,
asking again with each key settles it, and the sum is exactly what counted.

The stack's URL is 127.0.0.1 through nginx, which passes the Host header on: a node serves any
IP address in Host as well as its configured names (docs/api.md, the Host row), so no
`Host: localhost` is needed here.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from abacus_client import AsyncClient, Client
from tests.api_client import ADMIN_TOKEN
from tests.client_stack_support import (
    CLIENT_DEADLINE_S,
    CLIENT_TIMEOUT_S,
    NODE_DEADLINE_MS,
    PROXY_READ_TIMEOUT_S,
    Ledger,
    inject_fault,
    reckon,
    timed_add,
    timed_add_async,
)
from tests.conftest import StackFactory

pytestmark = pytest.mark.stack

THREADS = 8
TASKS = 64


def test_the_client_through_a_killed_node_and_a_stopped_redis(make_stack: StackFactory) -> None:
    stack = make_stack(
        proxy_read_timeout_s=PROXY_READ_TIMEOUT_S, ABACUS_ADD_DEADLINE_MS=NODE_DEADLINE_MS
    )
    ledger = Ledger()
    stop = threading.Event()
    with Client(
        stack.config.url,
        deadline=CLIENT_DEADLINE_S,
        timeout=CLIENT_TIMEOUT_S,
        new_key_if_fenced=True,
    ) as client:
        assert client.reset(ADMIN_TOKEN).message == "Sum successfully reset to 0"

        def keep_adding() -> None:
            while not stop.is_set():
                timed_add(ledger, client.add)

        with ThreadPoolExecutor(THREADS, thread_name_prefix="client-load") as pool:
            load = [pool.submit(keep_adding) for _ in range(THREADS)]
            try:
                inject_fault(stack, ledger, lambda: any(f.done() for f in load))
            finally:
                stop.set()
            for future in load:
                future.result()
    reckon(stack, ledger)


def test_the_async_client_at_concurrency_64(make_stack: StackFactory) -> None:
    stack = make_stack(
        proxy_read_timeout_s=PROXY_READ_TIMEOUT_S, ABACUS_ADD_DEADLINE_MS=NODE_DEADLINE_MS
    )
    ledger = Ledger()

    async def main() -> None:
        stop = asyncio.Event()
        async with AsyncClient(
            stack.config.url,
            deadline=CLIENT_DEADLINE_S,
            timeout=CLIENT_TIMEOUT_S,
            new_key_if_fenced=True,
        ) as client:
            await client.reset(ADMIN_TOKEN)

            async def keep_adding() -> None:
                while not stop.is_set():
                    await timed_add_async(ledger, client.add)

            tasks = [asyncio.create_task(keep_adding()) for _ in range(TASKS)]
            try:
                # The fault's waits block: in a thread, while the tasks keep the load going.
                await asyncio.to_thread(
                    inject_fault, stack, ledger, lambda: any(t.done() for t in tasks)
                )
            finally:
                stop.set()
                await asyncio.gather(*tasks)

    asyncio.run(main())
    reckon(stack, ledger)
