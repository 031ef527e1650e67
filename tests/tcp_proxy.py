"""A TCP proxy in front of a test's own redis-server, run on an event loop in a thread of its
own, so a test can stand between a node and Redis and misbehave on purpose. Subclasses say how
(`_handle` gets each accepted connection); this owns the loop, the listening socket and the
clean stop."""

from __future__ import annotations

import asyncio
import threading
from typing import Self

EXEC = b"*1\r\n$4\r\nEXEC\r\n"


class TcpProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._on_loop()
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def _on_loop(self) -> None:
        """Set up what must be made on the proxy's own loop (asyncio events), before it serves."""

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _open_upstream(
        self, client_w: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers |= {client_w, server_w}
        return server_r, server_w

    def _close(self, *writers: asyncio.StreamWriter) -> None:
        for writer in writers:
            writer.transport.abort()
            self._writers.discard(writer)

    def start(self) -> Self:
        self._thread.start()
        assert self._ready.wait(5), "the proxy started"
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            self._close(*self._writers)
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Aborted transports finish closing on the loop's next turn; a loop stopped before
            # that leaves them to the garbage collector, which warns.
            await asyncio.sleep(0.01)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
