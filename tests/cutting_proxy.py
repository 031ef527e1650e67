"""A TCP proxy between a node and Redis that cuts connections around EXEC, on purpose.

`after` mode lets the EXEC reach Redis and waits for its reply, then drops the reply and closes
both sides: the transaction is applied but the node never learns it (the ambiguous EXEC).
`before` mode drops the EXEC and closes: nothing is applied, and the node cannot tell either.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator

from tests.tcp_proxy import EXEC, TcpProxy


class CuttingProxy(TcpProxy):
    def __init__(self, upstream_port: int, every: int, modes: tuple[str, ...]) -> None:
        super().__init__(upstream_port)
        self.every = every
        self.modes = itertools.cycle(modes)
        self.execs = 0
        self.cuts: list[str] = []

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await self._open_upstream(client_w)
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
            self._close(client_w, server_w)
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await downstream


@contextlib.contextmanager
def cutting_proxy(upstream_port: int, every: int, modes: tuple[str, ...]) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(upstream_port, every, modes).start()
    try:
        yield proxy
    finally:
        proxy.stop()
