"""Firing planned adds and reads at a server from a pool of threads, recording each one.

Each worker thread owns one `AbacusClient` (one Session, one keep-alive connection) and takes
the next planned operation until none is left, so C workers keep C requests in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from abacus.harness.client import AbacusClient, Reply
from abacus.harness.history import Kind, Operation


def fire(
    url: str,
    operations: Sequence[Operation],
    *,
    concurrency: int,
    timeout: float,
    on_done: Callable[[Operation], None] | None = None,
    stop: threading.Event | None = None,
) -> float:
    """Perform the operations in order, `concurrency` at a time; returns the wall time taken.

    Once `stop` is set (if given) the workers take no new operation and the ones in flight
    finish, so the operations performed are always a prefix of `operations`: a caller can keep
    load up until some event instead of for a fixed count. On KeyboardInterrupt the same
    happens and the interrupt propagates. Operations never started stay INVOKED.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    next_index = iter(range(len(operations)))
    lock = threading.Lock()
    interrupted = threading.Event()

    def take() -> Operation | None:
        # Checked under the lock: once one take is refused every later one is, so the
        # operations performed are a prefix of the plan.
        with lock:
            if interrupted.is_set() or (stop is not None and stop.is_set()):
                return None
            i = next(next_index, None)
        return None if i is None else operations[i]

    def work() -> None:
        with AbacusClient(url, timeout=timeout) as client:
            while (op := take()) is not None:
                perform(client, op)
                if on_done is not None:
                    on_done(op)

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="abacus-load") as pool:
        futures = [pool.submit(work) for _ in range(min(concurrency, len(operations)))]
        try:
            for future in futures:
                future.result()
        except BaseException:
            interrupted.set()
            raise
    return time.monotonic() - began


def perform(client: AbacusClient, op: Operation) -> None:
    op.start = time.monotonic()
    if op.kind is Kind.ADD:
        assert op.number is not None
        reply = client.add(op.number, key=op.key)
    else:
        reply = client.read()
    op.end = time.monotonic()
    record(op, reply)


def record(op: Operation, reply: Reply) -> None:
    op.outcome = reply.outcome
    op.result = reply.value
    op.status = reply.status
    op.node_id = reply.node_id
    op.error = reply.error
    op.replayed = reply.replayed
    op.request_id = reply.request_id
    op.body = reply.body
