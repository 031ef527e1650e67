"""A TCP proxy between a node and Redis that cuts connections around EXEC, on purpose.

`after` mode lets the EXEC reach Redis and waits for its reply, then drops the reply and closes
both sides: the transaction is applied but the node never learns it (the ambiguous EXEC).
`before` mode drops the EXEC and closes: nothing is applied, and the node cannot tell either.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Iterator

EXEC = b"*1\r\n$4\r\nEXEC\r\n"


class CuttingProxy:
    def __init__(self, upstream_port: int, every: int, modes: tuple[str, ...]) -> None:
        self.upstream_port = upstream_port
        self.every = every
        self.modes = itertools.cycle(modes)
        self.execs = 0
        self.cuts: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> CuttingProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        cut_after = asyncio.Event()

        async def client_to_server() -> None:
            while data := await client_r.read(65536):
                if EXEC in data:
                    self.execs += 1
                    if self.execs % self.every == 0:
                        mode = next(self.modes)
                        self.cuts.append(mode)
                        if mode == "before":
                            return
                        server_w.write(data)
                        await server_w.drain()
                        cut_after.set()
                        return
                server_w.write(data)
                await server_w.drain()

        async def server_to_client() -> None:
            while data := await server_r.read(65536):
                if cut_after.is_set():
                    return  # the EXEC's reply: Redis applied it, the node never hears so
                client_w.write(data)
                await client_w.drain()

        upstream = asyncio.create_task(client_to_server())
        downstream = asyncio.create_task(server_to_client())
        try:
            await upstream
            if cut_after.is_set():
                await asyncio.wait_for(downstream, 5)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            downstream.cancel()
            for writer in (client_w, server_w):
                writer.transport.abort()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await downstream


@contextlib.contextmanager
def cutting_proxy(upstream_port: int, every: int, modes: tuple[str, ...]) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(upstream_port, every, modes).start()
    try:
        yield proxy
    finally:
        proxy.stop()
