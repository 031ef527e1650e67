"""The node's commit lock: workers exclude each other, and a dead holder frees it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from app.node_lock import NodeLock

HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_holder_waits_until_the_first_dies(tmp_path: Path) -> None:
    path = tmp_path / "commit.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        lock = NodeLock(path)

        async def acquire_while_held() -> None:
            task = asyncio.create_task(lock.acquire())
            await asyncio.sleep(0.3)
            assert not task.done(), "another worker holds the lock"
            holder.send_signal(signal.SIGKILL)  # the kernel releases a dead holder's lock
            await asyncio.wait_for(task, 5)

        asyncio.run(acquire_while_held())
        lock.release()
        lock.close()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_acquire_release_acquire(tmp_path: Path) -> None:
    lock = NodeLock(tmp_path / "commit.lock")

    async def twice() -> None:
        await lock.acquire()
        lock.release()
        await asyncio.wait_for(lock.acquire(), 1)
        lock.release()

    asyncio.run(twice())
    lock.close()
