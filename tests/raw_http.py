"""Raw HTTP/1.1 over a socket, for requests no HTTP library would send."""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass
class RawReply:
    status: int | None  # None: the connection closed with no response
    head: str
    body: bytes


def exchange(
    port: int, payload: bytes, timeout: float = 20.0, source: str = "127.0.0.1"
) -> RawReply:
    with socket.create_connection(("127.0.0.1", port), timeout, (source, 0)) as sock:
        sock.sendall(payload)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                head, sep, body = received.partition(b"\r\n\r\n")
                length = _content_length(head)
                if sep and length is not None and len(body) >= length:
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    if not received:
        return RawReply(None, "", b"")
    head, _, body = received.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    return RawReply(int(status_line.split()[1]), head.decode("latin-1"), body)


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None
