"""The node's own limits, held to the balancer's: nothing nginx passes on may be cut by them."""

from __future__ import annotations

import re

import pytest

from abacus import conf
from abacus.node.node_limits import (
    HEAD_LIMIT_BYTES,
    HEAD_TIMEOUT_S,
    KEEPALIVE_S,
    drain_timeout_s,
)

TEMPLATE = conf.NGINX_TEMPLATE
# What nginx adds to a request it passes on (X-Request-ID, X-Abacus-Retry-Key, X-Abacus-Try,
# X-Real-IP, Host and the request line's own growth): far less than this.
NGINX_ADDS_BYTES = 2048


def nginx(directive: str, text: str | None = None) -> str:
    found = re.findall(rf"^\s*{directive}\s+([^;]+);", text or TEMPLATE.read_text(), re.MULTILINE)
    (value,) = found
    return str(value).strip()


def upstream_block() -> str:
    (block,) = re.findall(r"^upstream abacus_nodes \{(.*?)^\}", TEMPLATE.read_text(), re.M | re.S)
    return str(block)


def size(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([km]?)", text).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit]


def test_the_head_limit_is_above_any_head_nginx_passes() -> None:
    count, buffer = nginx("large_client_header_buffers").split()
    assert int(count) * size(buffer) + NGINX_ADDS_BYTES < HEAD_LIMIT_BYTES


def test_the_head_timeout_is_nginx_s() -> None:
    assert nginx("client_header_timeout") == f"{HEAD_TIMEOUT_S:g}s"


def test_nginx_closes_an_idle_upstream_connection_before_the_node_does() -> None:
    upstream_idle = nginx("keepalive_timeout", upstream_block())
    assert size(upstream_idle.removesuffix("s")) < KEEPALIVE_S


@pytest.mark.parametrize(
    ("graceful_s", "deadline_s", "drain_s"),
    [(20, 3.0, 15), (20, 10.0, 8), (20, 0.05, 18), (20, 30.0, 1)],
)
def test_the_drain_leaves_the_app_its_shutdown(
    graceful_s: float, deadline_s: float, drain_s: int
) -> None:
    assert drain_timeout_s(graceful_s, deadline_s) == drain_s
