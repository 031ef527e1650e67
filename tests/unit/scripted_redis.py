"""A Redis for the commit path's unit tests: an in-memory key space with WATCH / MULTI / EXEC, and
a script that says what goes wrong on each round trip.

The commit lane talks to a connection in round trips (one write of several commands, then one
reply per command), so each fault applies to a whole round trip:

- `OK`: answered normally.
- `LOST`: executed, then the connection breaks before the replies come (an EXEC applied that the
  node never hears of).
- `DROPPED`: the connection breaks before Redis reads the commands (nothing applied).
- `STALL`: never answered (a stopped Redis); the caller's timer has to end the wait.
- `CONFLICT`: another client writes the sum just before these commands run.
- `GARBLED`: executed, then the replies cannot be parsed (redis-py's InvalidResponse): not an
  unreachable Redis, so the lane takes it for a bug.
- `error(message)`: Redis answers each write with an error (out of memory, read-only, too few
  replicas); READONLY as redis-py's parser gives it, a ReadOnlyError.

WAIT and WAITAOF answer with `replicas_confirming` (WAITAOF also with the local fsync).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ReadOnlyError, ResponseError

OK = "ok"
LOST = "lost"
DROPPED = "dropped"
STALL = "stall"
CONFLICT = "conflict"
GARBLED = "garbled"
_ERROR = "error:"


def error(message: str) -> str:
    return _ERROR + message


def _refusal(message: str) -> ResponseError:
    if message.startswith("READONLY "):
        # As redis-py's parser makes it (its error table maps the code to the class).
        return ReadOnlyError(message.removeprefix("READONLY "))
    return ResponseError(message)


def parse_commands(packed: bytes) -> list[list[bytes]]:
    """RESP arrays of bulk strings, as `app.resp.pack` writes them."""
    commands: list[list[bytes]] = []
    lines = deque(packed.split(b"\r\n"))
    while lines and lines[0]:
        count = int(lines.popleft()[1:])
        command = []
        for _ in range(count):
            lines.popleft()  # $length
            command.append(lines.popleft())
        commands.append(command)
    return commands


@dataclass
class ScriptedRedis:
    """The server: its keys, a version per key (what WATCH compares), and the fault script."""

    data: dict[bytes, bytes] = field(default_factory=dict)
    versions: dict[bytes, int] = field(default_factory=dict)
    script: deque[str] = field(default_factory=deque)
    # Every round trip's commands, by their names: what the node sent, in order.
    sent: list[list[str]] = field(default_factory=list)
    # Seconds to live each key was given (SET ... EX); a key not here never expires.
    expiries: dict[bytes, int] = field(default_factory=dict)
    connections_made: int = 0
    # What WAIT / WAITAOF report: how many replicas confirmed the connection's writes.
    replicas_confirming: int = 0
    # Lists (the lanes' token): BLPOP takes from one without blocking (nil when empty).
    lists: dict[bytes, list[bytes]] = field(default_factory=dict)

    def plan(self, faults: Iterable[str]) -> None:
        self.script.extend(faults)

    def write(self, key: bytes, value: bytes) -> None:
        self.data[key] = value
        self.versions[key] = self.versions.get(key, 0) + 1

    def get(self, key: str) -> bytes | None:
        return self.data.get(key.encode())

    @property
    def execs_sent(self) -> int:
        return sum("EXEC" in names for names in self.sent)


class ScriptedConnection:
    """The part of redis-py's asyncio Connection the ledger uses."""

    def __init__(self, server: ScriptedRedis) -> None:
        self.server = server
        self.replies: deque[Any] = deque()
        self.watched: dict[bytes, int] = {}
        self.queued: list[list[bytes]] | None = None
        self.aborted = False
        self.is_connected = True

    async def send_packed_command(self, packed: bytes, check_health: bool = True) -> None:
        commands = parse_commands(packed)
        self.server.sent.append([c[0].decode() for c in commands])
        fault = self.server.script.popleft() if self.server.script else OK
        if fault == DROPPED:
            self.replies.append(RedisConnectionError("connection reset before Redis read it"))
            return
        if fault == STALL:
            self.replies.append(STALL)
            return
        if fault == CONFLICT:
            self.server.write(b"abacus:sum", self.server.data.get(b"abacus:sum", b"0"))
        replies = [self._run(command, fault) for command in commands]
        if fault == LOST:
            self.replies.append(RedisConnectionError("connection reset before the reply"))
        elif fault == GARBLED:
            self.replies.append(InvalidResponse("Protocol Error: b'?'"))
        else:
            self.replies.extend(replies)

    # `timeout` as in redis-py's signature; the ledger bounds each round trip itself.
    async def read_response(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        reply = self.replies.popleft()
        if reply == STALL:
            self.replies.appendleft(STALL)
            await asyncio.Event().wait()  # until the caller's timer cancels it
        if isinstance(reply, Exception):
            if isinstance(reply, RedisConnectionError | InvalidResponse):
                self.replies.clear()
            raise reply
        return reply

    async def disconnect(self, nowait: bool = False) -> None:
        self.replies.clear()
        self.watched.clear()
        self.queued = None

    def _run(self, command: list[bytes], fault: str) -> Any:
        name, args = command[0].decode().upper(), command[1:]
        if fault.startswith(_ERROR) and name == "SET":
            # Redis refuses it (inside MULTI, and then the EXEC: EXECABORT).
            self.aborted = True
            return _refusal(fault.removeprefix(_ERROR))
        if self.queued is not None and name != "EXEC":
            self.queued.append(command)
            return b"QUEUED"
        if name in ("WAIT", "WAITAOF", "SET"):
            return self._write_or_wait(name, command)
        if name in ("DEL", "RPUSH", "BLPOP"):
            return self._token(name, command)
        if name == "WATCH":
            self.watched = {key: self.server.versions.get(key, 0) for key in args}
        elif name == "UNWATCH":
            self.watched = {}
        elif name == "MULTI":
            self.queued, self.aborted = [], False
        elif name in ("GET", "MGET", "PTTL", "EXEC"):
            return self._read_or_exec(name, args)
        else:
            raise AssertionError(f"unexpected command {name}")
        return b"OK"

    def _token(self, name: str, command: list[bytes]) -> Any:
        """The lanes' token outside a transaction: BLPOP (nil at once when there is none: this
        server never blocks), and the hand-on of an attempt that wrote nothing."""
        if name == "BLPOP":
            waiting = self.server.lists.get(command[1])
            return [command[1], waiting.pop(0)] if waiting else None
        return self._apply(command)

    def _write_or_wait(self, name: str, command: list[bytes]) -> Any:
        """SET outside a transaction (the probe before a WAIT), WAIT and WAITAOF."""
        if name == "SET":
            return self._apply(command)
        confirming = self.server.replicas_confirming
        return confirming if name == "WAIT" else [1, confirming]

    def _read_or_exec(self, name: str, args: list[bytes]) -> Any:
        if name == "GET":
            return self.server.data.get(args[0])
        if name == "MGET":
            return [self.server.data.get(key) for key in args]
        if name == "PTTL":
            if args[0] not in self.server.data:
                return -2
            if args[0] not in self.server.expiries:
                return -1
            return self.server.expiries[args[0]] * 1000
        return self._exec()

    def _exec(self) -> Any:
        queued, self.queued = self.queued, None
        if queued is None or self.aborted:
            return ResponseError("EXECABORT Transaction discarded because of previous errors.")
        changed = any(self.server.versions.get(k, 0) != v for k, v in self.watched.items())
        self.watched = {}
        if changed:
            return None
        return [self._apply(command) for command in queued]

    def _apply(self, command: list[bytes]) -> Any:
        """One queued write, as EXEC runs it: SET [EX seconds] [NX] (the sum, records, a quota
        counter's window) and INCRBY (the counter)."""
        if command[0].upper() == b"DEL":
            self.server.lists.pop(command[1], None)
            return int(self.server.data.pop(command[1], None) is not None)
        if command[0].upper() == b"RPUSH":
            self.server.lists.setdefault(command[1], []).extend(command[2:])
            return len(self.server.lists[command[1]])
        name, key, value, *options = command
        if name.upper() == b"INCRBY":
            total = int(self.server.data.get(key, b"0")) + int(value)
            self.server.write(key, str(total).encode())
            return total
        assert name.upper() == b"SET", command
        flags = [option.upper() for option in options]
        if b"NX" in flags and key in self.server.data:
            return None
        self.server.write(key, value)
        if b"EX" in flags:
            self.server.expiries[key] = int(options[flags.index(b"EX") + 1])
        return b"OK"


class ScriptedPool:
    """Hands out connections to one ScriptedRedis; `hang` makes getting one wait forever (a
    handshake with a stopped Redis)."""

    def __init__(self, server: ScriptedRedis, *, hang: bool = False) -> None:
        self.server = server
        self.hang = hang

    async def get_connection(self) -> ScriptedConnection:
        if self.hang:
            await asyncio.Event().wait()
        self.server.connections_made += 1
        return ScriptedConnection(self.server)

    async def release(self, connection: ScriptedConnection) -> None:
        pass
