"""Small in-memory servers of the Abacus API, most of them deliberately wrong.

Each keeps its sum in memory behind `http.server.ThreadingHTTPServer` on a free port of
127.0.0.1, answers `/abacus/number`, `/abacus/sum` (GET, DELETE) and `/health` in the API's
shapes, and pretends to be several nodes (round robin over `X-Node-Id`), so the checker and the
benchmark can be tested without Redis, Gunicorn or nginx.

The faults:
- `LostUpdate`: read-modify-write without a lock, with a pause in between.
- `AppliedTwice`: every `every`-th add is applied twice.
- `WrongNewSum`: the stored sum is right, but every `every`-th add reports a new_sum off by one.
- `StaleRead`: reads come from a cache refreshed only every `refresh_every`-th read.
- `RefusedButCounted`: every `every`-th add is applied, then answered 503 `unavailable`
  ("nothing changed"): the lie a stalled Redis plus a balancer retry used to tell.
`MostlyInternalErrors` is not wrong, only unhelpful: most adds and every read get a 500.
`Correct` holds a lock around each add, as a correct server must.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from abacus.harness.decimals import parse_json, render


class Counter:
    """The state of one server: a sum, and how adds and reads treat it."""

    def __init__(self) -> None:
        self.sum = Decimal(0)
        self.lock = threading.Lock()
        self.adds = 0

    def add(self, number: Decimal) -> Decimal:
        """Apply an add; returns the new_sum to report."""
        with self.lock:
            self.sum += number
            return self.sum

    def read(self) -> Decimal:
        with self.lock:
            return self.sum

    def reset(self) -> Decimal:
        with self.lock:
            replaced, self.sum = self.sum, Decimal(0)
            return replaced

    def refusal(self, key: str | None) -> tuple[int, str] | None:
        """An error (status, code) to answer instead of applying an add with this key."""
        return None

    def keyed(self, key: str | None, number: Decimal) -> tuple[int, dict[str, Any]] | None:
        """The whole answer (status, fields) to an add with this key, when the server keeps
        its keys' records itself; None: applied as usual."""
        return None

    def read_error(self) -> tuple[int, str] | None:
        """An error (status, code) to answer a read with instead of the sum."""
        return None


class Correct(Counter):
    pass


class FencesSomeKeys(Counter):
    """Correct, and truthful the way Abacus is when it cannot commit: every `every`-th new key is
    answered 503 `outcome_unknown` without counting, and its key fenced (409 from then on)."""

    def __init__(self, every: int = 5) -> None:
        super().__init__()
        self.every = every
        self.seen: set[str] = set()
        self.fenced: set[str] = set()

    def refusal(self, key: str | None) -> tuple[int, str] | None:
        with self.lock:
            if key is None:
                return None
            if key in self.fenced:
                return 409, "idempotency_key_refused"
            if key not in self.seen:
                self.seen.add(key)
                if len(self.seen) % self.every == 0:
                    self.fenced.add(key)
                    return 503, "outcome_unknown"
            return None


class BudgetRefusesSomeKeys(Counter):
    """Correct and truthful the way Abacus's key budget is: every `every`-th new key is answered
    `status` `code` (429 key_quota_exhausted, 503 key_store_full), which says only that *this
    request* did not add. With `counted_elsewhere`, the add counted all the same, as when nginx
    had passed the request to a node that committed it; the key's record answers from then on
    (a replay). Without it, the key stays refused by the budget, asked again or not."""

    def __init__(
        self, *, status: int, code: str, every: int = 5, counted_elsewhere: bool = True
    ) -> None:
        super().__init__()
        self.status = status
        self.code = code
        self.every = every
        self.counted_elsewhere = counted_elsewhere
        self.new_keys = 0
        self.records: dict[str, Decimal] = {}
        self.refused: set[str] = set()

    def keyed(self, key: str | None, number: Decimal) -> tuple[int, dict[str, Any]] | None:
        if key is None:
            return None
        with self.lock:
            if key in self.records:
                return 200, {"new_sum": self.records[key], "added": number}
            if key in self.refused:
                return self._refusal()
            self.new_keys += 1
            if self.new_keys % self.every:
                self.sum += number
                self.records[key] = self.sum
                return 200, {"new_sum": self.sum, "added": number}
            if self.counted_elsewhere:
                self.sum += number
                self.records[key] = self.sum
            else:
                self.refused.add(key)
            return self._refusal()

    def _refusal(self) -> tuple[int, dict[str, Any]]:
        return self.status, {"error": self.code, "message": "this request did not add"}


class MostlyInternalErrors(Counter):
    """Truthful but unhelpful: only every `every`-th add is answered 200; the others get a 500
    (unknown to the client), and every other one of those was applied all the same. Every
    second read gets a 500 too: a read that fails is failed, never unknown."""

    def __init__(self, every: int = 10) -> None:
        super().__init__()
        self.every = every
        self.reads = 0

    def keyed(self, key: str | None, number: Decimal) -> tuple[int, dict[str, Any]] | None:
        with self.lock:
            self.adds += 1
            if self.adds % self.every == 0:
                self.sum += number
                return 200, {"new_sum": self.sum, "added": number}
            if self.adds % 2:
                self.sum += number
            return 500, {"error": "internal", "message": "an unexpected error"}

    def read_error(self) -> tuple[int, str] | None:
        with self.lock:
            self.reads += 1
            return (500, "internal") if self.reads % 2 == 0 else None


class LostUpdate(Counter):
    def add(self, number: Decimal) -> Decimal:
        current = self.sum
        time.sleep(0.002)  # another add reads the same sum meanwhile; one write wins
        self.sum = current + number
        return self.sum


class _EveryNth(Counter):
    """Correct except on every `every`-th add."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every

    def _count_add(self) -> bool:
        """Count one more add; True when it is an `every`-th one."""
        self.adds += 1
        return self.adds % self.every == 0


class AppliedTwice(_EveryNth):
    def __init__(self, every: int = 50) -> None:
        super().__init__(every)

    def add(self, number: Decimal) -> Decimal:
        with self.lock:
            self.sum += number
            if self._count_add():
                self.sum += number
            return self.sum


class WrongNewSum(_EveryNth):
    def __init__(self, every: int = 10) -> None:
        super().__init__(every)

    def add(self, number: Decimal) -> Decimal:
        with self.lock:
            wrong = self._count_add()
            self.sum += number
            return self.sum + 1 if wrong else self.sum


class Refused(Exception):
    """An add the server answers 503 `unavailable`, whatever it did with it."""


class RefusedButCounted(_EveryNth):
    def __init__(self, every: int = 25) -> None:
        super().__init__(every)

    def add(self, number: Decimal) -> Decimal:
        with self.lock:
            self.sum += number
            if self._count_add():
                raise Refused
            return self.sum


class StaleRead(Counter):
    def __init__(self, refresh_every: int = 50) -> None:
        super().__init__()
        self.refresh_every = refresh_every
        self.reads = 0
        self.cached = Decimal(0)

    def read(self) -> Decimal:
        with self.lock:
            if self.reads % self.refresh_every == 0:
                self.cached = self.sum
            self.reads += 1
            return self.cached

    def reset(self) -> Decimal:
        with self.lock:
            replaced, self.sum, self.cached, self.reads = self.sum, Decimal(0), Decimal(0), 1
            return replaced


FAULTY: dict[str, type[Counter]] = {
    "lost update": LostUpdate,
    "add applied twice": AppliedTwice,
    "new_sum values fit no sequential order": WrongNewSum,
    "stale read": StaleRead,
    "failed add applied": RefusedButCounted,
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default of 5 drops connection bursts into SYN retries

    def __init__(self, counter: Counter, nodes: int, admin_token: str | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.counter = counter
        self.node_names = itertools.cycle([f"node-{i}" for i in range(1, nodes + 1)])
        self.node_lock = threading.Lock()
        self.admin_token = admin_token

    def handle_error(self, request: Any, client_address: Any) -> None:
        # wrk and stopping clients reset their connections; that is not the server's fault.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def next_node(self) -> str:
        with self.node_lock:
            return next(self.node_names)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 10  # idle keep-alive connections end on their own
    # Headers and body in one segment: separate small writes meet the client's delayed ACK.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    routes: ClassVar[dict[str, set[str]]] = {
        "/abacus/number": {"POST"},
        "/abacus/sum": {"GET", "DELETE"},
        "/health": {"GET"},
    }

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self.node = self.server.next_node()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        allowed = self.routes.get(self.path)
        if allowed is None:
            self._error(404, "not_found", "no such path")
        elif method not in allowed:
            self._error(405, "method_not_allowed", "method not allowed")
        elif self.path == "/abacus/number":
            self._add(body)
        elif self.path == "/health":
            self._send(200, {"status": "healthy", "redis_connected": True})
        elif method == "GET":
            self._read()
        else:
            self._reset()

    def _add(self, raw: bytes) -> None:
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            self._error(415, "unsupported_media_type", "send application/json")
            return
        try:
            body = parse_json(raw.decode())
        except (ValueError, UnicodeDecodeError):
            self._error(400, "invalid_json", "the body is not valid JSON")
            return
        number = body.get("number") if isinstance(body, dict) else None
        if not isinstance(number, Decimal) or set(body) != {"number"}:
            self._error(422, "invalid_number", 'send exactly {"number": <number>}')
            return
        if self._answered_for_the_key(number):
            return
        try:
            new_sum = self.server.counter.add(number)
        except InvalidOperation:
            self._error(422, "invalid_number", "not a usable number")
            return
        except Refused:
            self._error(503, "unavailable", "nothing changed (not true: it counted)")
            return
        self._send(200, {"new_sum": new_sum, "added": number})

    def _answered_for_the_key(self, number: Decimal) -> bool:
        """True when the counter answered the add itself (its key's record, or a refusal)."""
        key = self.headers.get("Idempotency-Key")
        answer = self.server.counter.keyed(key, number)
        if answer is not None:
            status, fields = answer
            self._send(status, fields, stamped=status == 200)
            return True
        refusal = self.server.counter.refusal(key)
        if refusal is not None:
            self._error(*refusal, "refused")
            return True
        return False

    def _read(self) -> None:
        refused = self.server.counter.read_error()
        if refused is not None:
            self._error(*refused, "the sum cannot be read now")
            return
        self._send(200, {"sum": self.server.counter.read()})

    def _reset(self) -> None:
        token = self.server.admin_token
        if token is not None:
            given = self.headers.get("Authorization")
            if given is None:
                self._error(401, "unauthorized", "reset needs a bearer token")
                return
            if given != f"Bearer {token}":
                self._error(403, "forbidden", "wrong token")
                return
        self.server.counter.reset()
        self._send(200, {"message": "Sum successfully reset to 0"})

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, {"error": code, "message": message}, stamped=False)

    def _send(self, status: int, fields: dict[str, Any], *, stamped: bool = True) -> None:
        if stamped:
            fields = {
                **fields,
                "timestamp": datetime.now(UTC).isoformat(),
                "node_id": self.node,
            }
        payload = _json(fields).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Node-Id", self.node)
        self.send_header("X-Request-ID", uuid.uuid4().hex)
        self.end_headers()
        self.wfile.write(payload)


def _json(fields: dict[str, Any]) -> str:
    """JSON with Decimals as exact number literals (json.dumps would need floats)."""
    parts = (
        f"{json.dumps(k)}: {render(v) if isinstance(v, Decimal) else json.dumps(v)}"
        for k, v in fields.items()
    )
    return "{" + ", ".join(parts) + "}"


@contextmanager
def serve(
    counter: Counter | None = None, *, nodes: int = 3, admin_token: str | None = None
) -> Iterator[str]:
    """Run a server in a background thread; yields its base URL, stops it afterwards."""
    server = _Server(counter if counter is not None else Correct(), nodes, admin_token)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
