"""Workers of one node take turns to commit: a file lock that the kernel drops if a worker dies.

Every worker runs its own group-commit lane, and all lanes race for the one hot key. Within a
node that race buys nothing (the workers share the machine, the network and the Redis), so they
take turns and the only conflicts left are between nodes; each turn carries a bigger batch.
It is a scheduling aid, not the concurrency control: that is still WATCH / EXEC in Redis.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path


class NodeLock:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Each worker opens the file itself: flock excludes other open file descriptions.
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    async def acquire(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Held by another worker: wait in a thread, the event loop keeps serving.
            await asyncio.get_running_loop().run_in_executor(
                None, fcntl.flock, self._fd, fcntl.LOCK_EX
            )

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)
