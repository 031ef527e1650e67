"""One connection of the node's HTTP protocol, in process: a fake transport, and a clock that the
test moves itself (a timer fires when the test fires it, never by the machine's pace)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from starlette.types import Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.server import ServerState

from abacus.node.http_protocol import AbacusHttpProtocol
from abacus.node.node_limits import KEEPALIVE_S

# Loop iterations a test lets the app's tasks run for before it gives up on what it waits for.
# Iterations, not seconds: what a task does between two awaits takes none of them.
PATIENCE_STEPS = 10_000


@dataclass
class Timer:
    delay: float
    callback: Callable[..., object]
    args: tuple[object, ...]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        assert not self.cancelled, "a cancelled timer never fires"
        self.cancelled = True
        self.callback(*self.args)


class ManualClock:
    """The running loop, except that `call_later` only records the timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.timers: list[Timer] = []

    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> Timer:
        timer = Timer(delay, callback, args)
        self.timers.append(timer)
        return timer

    def create_task(self, coroutine: Any, **kwargs: Any) -> asyncio.Task[None]:
        return self._loop.create_task(coroutine, **kwargs)


class FakeTransport(asyncio.Transport):
    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.sent = bytearray()
        self.sent_after_close = bytearray()
        self.closed = False
        self.lost = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        (self.sent_after_close if self.closed else self.sent).extend(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self._lose)

    def _lose(self) -> None:
        self.lost = True
        self.protocol.connection_lost(None)

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def replies(data: bytes | bytearray) -> list[Reply]:
    """The responses in `data`, each with a Content-Length (all the node's answers have one)."""
    found = []
    rest = bytes(data)
    while rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"{name} sent twice"
            headers[name.lower()] = value.strip()
        length = int(headers["content-length"])
        found.append(Reply(int(status_line.split()[1]), headers, rest[:length]))
        rest = rest[length:]
    return found


@dataclass
class EchoApp:
    """Reads the whole body, then answers 200 with it; while `gate` is set, waits for it first."""

    bodies: list[bytes] = field(default_factory=list)
    disconnects: int = 0
    gate: asyncio.Event | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnects += 1
                return
            body += message["body"]
            if not message["more_body"]:
                break
        self.bodies.append(body)
        if self.gate is not None:
            await self.gate.wait()
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class Connection:
    """The protocol on one fake connection, made when the test is already in a running loop."""

    def __init__(
        self,
        app: Any,
        *,
        state: dict[str, Any] | None = None,
        limit_concurrency: int | None = None,
    ) -> None:
        self.clock = ManualClock(asyncio.get_running_loop())
        config = Config(
            app=app,
            lifespan="off",
            log_config=None,
            limit_concurrency=limit_concurrency,
            timeout_keep_alive=KEEPALIVE_S,
        )
        self.server_state = ServerState()
        self.protocol = AbacusHttpProtocol(
            config,
            self.server_state,
            state or {},
            _loop=cast(asyncio.AbstractEventLoop, self.clock),
        )
        self.transport = FakeTransport(self.protocol)
        self.protocol.connection_made(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.data_received(data)

    def replies(self) -> list[Reply]:
        return replies(self.transport.sent)

    def deadlines(self) -> list[Timer]:
        """The protocol's pending deadlines (uvicorn's keep-alive timer apart)."""
        keep_alive = self.protocol.timeout_keep_alive_handler
        return [t for t in self.clock.timers if not t.cancelled and t.callback != keep_alive]

    def keep_alive_timers(self) -> list[Timer]:
        keep_alive = self.protocol.timeout_keep_alive_handler
        return [t for t in self.clock.timers if not t.cancelled and t.callback == keep_alive]

    async def until(self, condition: Callable[[], bool]) -> bool:
        """Let the loop run until `condition()` holds (False if it never does)."""
        for _ in range(PATIENCE_STEPS):
            if condition():
                return True
            await asyncio.sleep(0)
        return condition()


def run(test: Callable[[], Any]) -> None:
    asyncio.run(test())
