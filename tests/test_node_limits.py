"""A node reached directly, without the balancer: its head limit, its timeouts, its graceful stop
with stalled connections, and its own answers to what it cannot parse
(abacus/node/http_protocol.py)."""

from __future__ import annotations

import json
import re
import select
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from abacus.local_stack import processes
from abacus.node.node_limits import BODY_TIMEOUT_S, GRACEFUL_TIMEOUT_S, HEAD_TIMEOUT_S
from tests.raw_http import RawReply, exchange
from tests.single_node import Node, rss_kib, single_node
from tests.stack_marker import require_stack_marker
from tests.waiting import PATIENCE_S, wait_until

pytestmark = pytest.mark.stack

MIB = 2**20
FRESH_ID = re.compile(r"[0-9a-f]{32}")
# A worker's growth from one refused 10 MB header block. What it may keep is one head of at most
# HEAD_LIMIT_BYTES: as the smallest headers (8 bytes each) that is ~8,000 of them, ~1.2 MB of
# Python objects, plus the reads' buffers (uvloop reads 256 KiB at a time) and the allocator's
# slack: measured +0.9 MB. The same block costs +165 MB without the limit (measured on the
# code before it). 16 MiB is far above the first and far below the second.
RSS_GROWTH_BOUND_KIB = 16 * 1024
# A deadline's timer never fires before its time, counted from a moment the client saw before
# the node did; this only absorbs the event loop's clock granularity (milliseconds).
TIMER_SLACK_S = 0.5


@pytest.fixture(scope="module")
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Node]:
    require_stack_marker(request, "node")
    with single_node(tmp_path_factory.mktemp("node")) as running:
        yield running


def head_lines(reply: RawReply) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in reply.head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        assert name.lower() not in headers, f"{name} sent twice"
        headers[name.lower()] = value.strip()
    return headers


def assert_json_error(reply: RawReply, status: int, code: str) -> dict[str, str]:
    assert reply.status == status, reply
    headers = head_lines(reply)
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert headers["x-node-id"] == "node-solo"
    body = json.loads(reply.body)
    assert set(body) == {"error", "message"}
    assert body["error"] == code
    return headers


def parse_reply(received: bytes) -> RawReply:
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b"\r\n", 1)[0].split()[1]) if head else None
    return RawReply(status, head.decode("latin-1"), body)


def read_until_closed(sock: socket.socket, timeout: float = PATIENCE_S) -> bytes | None:
    """Everything the node sends until it closes the connection (or resets it); None if it is
    still open after `timeout`."""
    received = b""
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
    except ConnectionResetError:
        return received
    except TimeoutError:
        pass
    return None


def flood(port: int, start: bytes, filler: bytes, total: int, end: bytes) -> tuple[int, RawReply]:
    """Send `start`, then `filler` until `total` bytes are sent, then `end`, stopping as soon as
    the node answers or closes. The bytes sent, and its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE_S) as sock:
        sent = 0
        try:
            sock.sendall(start)
            sent += len(start)
            while sent < total and not select.select([sock], [], [], 0)[0]:
                sock.sendall(filler)
                sent += len(filler)
            sock.sendall(end)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the node closed it: its answer was sent before
        return sent, parse_reply(read_until_closed(sock) or b"")


def test_a_huge_header_block_is_refused_and_the_worker_stays_small(node: Node) -> None:
    (worker,) = node.worker_pids()
    # One ordinary request first, so that what a worker allocates once is not counted.
    assert (
        exchange(node.port, b"GET /abacus/sum HTTP/1.1\r\nHost: localhost\r\n\r\n").status
        is not None
    )
    before = rss_kib(worker)
    total = 10 * MIB
    sent, reply = flood(
        node.port,
        b"GET /abacus/sum HTTP/1.1\r\nHost: localhost\r\nX-Request-ID: big-1\r\n",
        b"X-a: b\r\n" * 8192,
        total,
        b"\r\n",
    )
    grown = rss_kib(worker) - before
    headers = assert_json_error(reply, 431, "header_too_large")
    assert headers["x-request-id"] == "big-1"
    assert sent < total, "the node answered and closed before the block was all sent"
    assert grown <= RSS_GROWTH_BOUND_KIB, f"the worker grew by {grown} KiB"
    assert node.worker_pids() == [worker]


def test_a_huge_url_is_cut_long_before_it_is_sent(node: Node) -> None:
    total = 100 * MIB
    sent, reply = flood(node.port, b"GET /", b"u" * 65536, total, b" HTTP/1.1\r\n\r\n")
    headers = assert_json_error(reply, 431, "header_too_large")
    assert FRESH_ID.fullmatch(headers["x-request-id"])
    # What was sent beyond the limit sits in the two sockets' kernel buffers (a few MB at most):
    # the node answered after HEAD_LIMIT_BYTES, not after reading (and concatenating) 100 MB.
    assert sent < total


@pytest.mark.parametrize(
    ("request_bytes", "own_id"),
    [
        (b"GET /abacus/\xff HTTP/1.1\r\nHost: localhost\r\nX-Request-ID: req-b-1\r\n\r\n", False),
        (b"GET /abacus/sum HTTP/1.1\r\nX-Request-ID: req-b-1\r\nX-Junk: a\x01b\r\n\r\n", True),
        (b"FOO /abacus/sum HTTP/1.1\r\nHost: localhost\r\nX-Request-ID: req-b-1\r\n\r\n", False),
    ],
    ids=["byte 0xff in the path", "byte 0x01 in a header value", "unknown method"],
)
def test_what_the_node_cannot_parse_is_a_json_400(
    node: Node, request_bytes: bytes, own_id: bool
) -> None:
    with socket.create_connection(("127.0.0.1", node.port), timeout=PATIENCE_S) as sock:
        sock.sendall(request_bytes)
        reply = parse_reply(read_until_closed(sock) or b"")
    headers = assert_json_error(reply, 400, "bad_request")
    # The request's own id when it was read before the error, else a fresh one.
    if own_id:
        assert headers["x-request-id"] == "req-b-1"
    else:
        assert FRESH_ID.fullmatch(headers["x-request-id"])


def test_stalled_connections_are_closed_by_the_node_s_timeouts(node: Node) -> None:
    started: dict[str, float] = {}
    sockets: dict[str, socket.socket] = {}

    def connect(name: str) -> socket.socket:
        started[name] = time.monotonic()
        sockets[name] = socket.create_connection(("127.0.0.1", node.port), timeout=PATIENCE_S)
        return sockets[name]

    try:
        connect("idle")
        keep_alive = connect("next head stalled")
        keep_alive.sendall(b"GET /abacus/sum HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head, _, body = keep_alive.recv(65536).partition(b"\r\n\r\n")
        length = int(re.findall(rb"content-length: (\d+)", head)[0])
        while len(body) < length:
            body += keep_alive.recv(65536)
        started["next head stalled"] = time.monotonic()
        keep_alive.sendall(b"GET /abacus/sum HT")
        connect("body stalled").sendall(
            b"POST /abacus/number HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b'Content-Length: 13\r\n\r\n{"num'
        )
        timeouts = {
            "idle": HEAD_TIMEOUT_S,
            "next head stalled": HEAD_TIMEOUT_S,
            "body stalled": BODY_TIMEOUT_S,
        }
        for name, timeout in timeouts.items():
            # The bound only decides how long a failing test takes: a node that cut nothing.
            left = started[name] + timeout + PATIENCE_S - time.monotonic()
            sent = read_until_closed(sockets[name], max(0.0, left))
            closed_after = time.monotonic() - started[name]
            assert sent == b"", f"{name}: closed, without an answer"
            assert closed_after >= timeout - TIMER_SLACK_S, f"{name}: by its timeout, not before"
    finally:
        for sock in sockets.values():
            sock.close()


def established(pid: int, port: int) -> int:
    """How many established TCP connections on `port` the process holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:
            continue
        if str(target).startswith("socket:["):
            inodes.add(str(target)[8:-1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == "01" and fields[9] in inodes:
            count += 1
    return count


def test_a_graceful_stop_is_not_held_by_stalled_connections(tmp_path: Path) -> None:
    with single_node(tmp_path) as node:
        (worker,) = node.worker_pids()
        opened: list[socket.socket] = []
        try:

            def connect(payload: bytes = b"") -> socket.socket:
                sock = socket.create_connection(("127.0.0.1", node.port), timeout=PATIENCE_S)
                opened.append(sock)
                if payload:
                    sock.sendall(payload)
                return sock

            for _ in range(3):
                connect()  # idle, never a byte
            connect(b"GET /abacus/sum HTTP/1.1\r\nHost: localhost\r\n")  # half a head
            connect(
                b"POST /abacus/number HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/json\r\n"
                b'Content-Length: 13\r\n\r\n{"num'
            )  # half a body
            for stalled_next in (False, True):  # a keep-alive connection, idle or half a head
                keep_alive = connect(b"GET /abacus/sum HTTP/1.1\r\nHost: localhost\r\n\r\n")
                assert keep_alive.recv(65536).startswith(b"HTTP/1.1 ")
                if stalled_next:
                    keep_alive.sendall(b"GET /abacus/sum HT")
            # The worker holds them all (accepted, not waiting in the listen queue).
            assert wait_until(lambda: established(worker, node.port) == len(opened))

            stopping = time.monotonic()
            assert processes.signal_process(node.process, signal.SIGTERM)
            # Gunicorn kills a worker still running after graceful_timeout; the node must be
            # gone before that, on its own.
            assert processes.wait_gone(node.process, GRACEFUL_TIMEOUT_S), "the master exited"
            stop_s = time.monotonic() - stopping
            for sock in opened:
                assert read_until_closed(sock, PATIENCE_S) is not None, "the node closed it"
        finally:
            for sock in opened:
                sock.close()
    log = node.log.read_text()
    # It was the stop that closed them, not the deadlines (10 s), uvicorn's drain timeout or
    # Gunicorn's SIGKILL: the stop took well under any of those (measured about 0.5 s).
    assert "Closing a connection" not in log, f"the deadlines closed them ({stop_s:.1f} s)"
    assert "timeout graceful shutdown exceeded" not in log
    assert "SIGKILL" not in log
    assert "node stopped" in log, "the app's own shutdown ran"
