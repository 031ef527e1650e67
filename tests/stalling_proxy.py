"""A TCP proxy in front of Redis that stalls, on command, the moment an EXEC arrives.

It plays a Redis that stops answering with an EXEC already in its input buffer (a SIGSTOP, a
long fsync): everything sent from then on, on every connection, is held, in order, until
`release()`; then it is delivered as Redis would read it after the stall, including what a
client sent before it went away (Redis runs the commands it has read before it sees the close).
Sending the EXEC on from the proxy's side after the stall is exactly what makes a late commit
possible, which is what the tests of truthful answers need to provoke.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from tests.tcp_proxy import EXEC, TcpProxy


class StallingProxy(TcpProxy):
    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        # Set (from the proxy's thread) when the stall began: an EXEC arrived while armed.
        self.stalled = threading.Event()
        self._armed = False
        self._released: asyncio.Event | None = None

    def _on_loop(self) -> None:
        self._released = asyncio.Event()

    def arm(self) -> None:
        """Stall at the next EXEC that any connection sends."""

        def arm() -> None:
            assert self._released is not None
            self._released.clear()
            self.stalled.clear()
            self._armed = True

        self._loop.call_soon_threadsafe(arm)

    def release(self) -> None:
        """End the stall: deliver everything held, in order, and pass traffic through again."""

        def release() -> None:
            assert self._released is not None
            self._armed = False
            self._released.set()

        self._loop.call_soon_threadsafe(release)

    async def _hold(self) -> None:
        """Wait out the stall, if one is on."""
        assert self._released is not None
        if self.stalled.is_set() and not self._released.is_set():
            await self._released.wait()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await self._open_upstream(client_w)

        async def client_to_server() -> None:
            while data := await client_r.read(65536):
                if self._armed and EXEC in data:
                    self._armed = False
                    self.stalled.set()
                await self._hold()
                server_w.write(data)
                await server_w.drain()
            # The client went away: what it sent was delivered (after any stall); Redis reads
            # it before it notices the close.
            await self._hold()

        async def server_to_client() -> None:
            while data := await server_r.read(65536):
                await self._hold()
                client_w.write(data)
                await client_w.drain()

        upstream = asyncio.create_task(client_to_server())
        downstream = asyncio.create_task(server_to_client())
        try:
            await upstream
            # Let Redis answer what was delivered last before closing its side.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(downstream), 0.5)
        except (ConnectionError, OSError):
            pass
        finally:
            downstream.cancel()
            self._close(client_w, server_w)
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await downstream


@contextlib.contextmanager
def stalling_proxy(upstream_port: int) -> Iterator[StallingProxy]:
    proxy = StallingProxy(upstream_port).start()
    try:
        yield proxy
    finally:
        proxy.stop()
