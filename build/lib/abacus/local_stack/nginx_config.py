"""The balancer's configuration: the shared template, rendered as the official nginx image does.

The image runs `envsubst` over /etc/nginx/templates/*.template with the names of the variables
that are set, so `${NAME}` is replaced only when NAME is set and nginx's own `$variables` stay.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from abacus import conf
from abacus.local_stack.errors import StackError
from abacus.node.settings import DEFAULT_ADD_DEADLINE_MS, DEFAULT_RETRY_KEY_TTL_S, RESOLVE_GRACE_S

MAIN_CONF = conf.NGINX_MAIN_CONF
TEMPLATE = conf.NGINX_TEMPLATE

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

DEFAULT_ADD_DEADLINE_S = DEFAULT_ADD_DEADLINE_MS / 1000
# Passive health: a node that fails once is left out for this long.
FAIL_TIMEOUT_S = 2
DEFAULT_RATE_LIMIT = 1000
DEFAULT_RATE_BURST = 2000
CLIENT_BODY_TIMEOUT_S = 10.0
PROXY_READ_TIMEOUT_S = 8.0
# A node answers an add by its deadline plus the resolve grace; nginx must wait longer than that,
# by this much more for the answer's way back on a loaded machine, before it passes the add on.
PROXY_READ_MARGIN_S = 1.0
# The template's proxy_next_upstream_timeout: how long nginx keeps passing a request on after
# its first try failed.
NEXT_UPSTREAM_TIMEOUT_S = 20.0


def check_timing(
    proxy_read_timeout_s: float, add_deadline_s: float, retry_key_ttl_s: float
) -> None:
    """Refuse a balancer that would give up on a node still deciding an add (the retry it sends
    elsewhere would race the first node's answer), or that could pass a request on after its
    retry key's record (or fence) has expired."""
    needed = add_deadline_s + RESOLVE_GRACE_S + PROXY_READ_MARGIN_S
    if proxy_read_timeout_s <= needed:
        raise StackError(
            f"the balancer's proxy read timeout ({proxy_read_timeout_s:g} s) must exceed the add "
            f"deadline ({add_deadline_s:g} s) + resolve grace ({RESOLVE_GRACE_S:g} s) + "
            f"{PROXY_READ_MARGIN_S:g} s"
        )
    passing_on = proxy_read_timeout_s + NEXT_UPSTREAM_TIMEOUT_S + add_deadline_s + RESOLVE_GRACE_S
    if retry_key_ttl_s < passing_on:
        raise StackError(
            f"ABACUS_RETRY_KEY_TTL_S ({retry_key_ttl_s:g} s) must be at least the time nginx may "
            f"still pass a request on and a node commit it ({passing_on:g} s)"
        )


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def render(template: str, env: Mapping[str, str]) -> str:
    return _VARIABLE.sub(lambda m: env.get(m.group(1), m.group(0)), template)


def template_variables(template: str) -> set[str]:
    return set(_VARIABLE.findall(template))


def upstream_servers(addresses: Sequence[str], extra: str = "") -> str:
    """`server` lines; a node that fails once is skipped for 2 s (passive health)."""
    params = f"max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s{' ' + extra if extra else ''}"
    return "\n    ".join(f"server {address} {params};" for address in addresses)


def local_env(
    listen_port: int,
    node_ports: Sequence[int],
    *,
    balancer_secret: str,
    rate_limit: bool,
    rate_per_s: int = DEFAULT_RATE_LIMIT,
    rate_burst: int = DEFAULT_RATE_BURST,
    add_deadline_s: float = DEFAULT_ADD_DEADLINE_S,
    retry_key_ttl_s: float = DEFAULT_RETRY_KEY_TTL_S,
    proxy_read_timeout_s: float = PROXY_READ_TIMEOUT_S,
    client_body_timeout_s: float = CLIENT_BODY_TIMEOUT_S,
) -> dict[str, str]:
    check_timing(proxy_read_timeout_s, add_deadline_s, retry_key_ttl_s)
    return {
        "ABACUS_LISTEN": f"127.0.0.1:{listen_port}",
        "ABACUS_UPSTREAM_SERVERS": upstream_servers([f"127.0.0.1:{p}" for p in node_ports]),
        "ABACUS_RESOLVER": "",
        "ABACUS_BALANCER_SECRET": balancer_secret,
        "ABACUS_RATE_LIMIT": str(rate_per_s),
        "ABACUS_RATE_BURST": str(rate_burst),
        "ABACUS_RATE_LIMIT_ENABLED": "on" if rate_limit else "off",
        "ABACUS_PROXY_READ_TIMEOUT": _duration(proxy_read_timeout_s),
        "ABACUS_CLIENT_BODY_TIMEOUT": _duration(client_body_timeout_s),
    }


def write_prefix(prefix: Path, env: Mapping[str, str]) -> Path:
    """Lay out an nginx prefix directory using the shared files; returns the main conf path."""
    (prefix / "conf.d").mkdir(parents=True, exist_ok=True)
    (prefix / "tmp").mkdir(exist_ok=True)
    rendered = render(TEMPLATE.read_text(), env)
    # The rendered file holds the balancer's secret: readable by its owner only, from the start.
    conf = prefix / "conf.d" / "abacus.conf"
    conf.unlink(missing_ok=True)
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(rendered)
    main = prefix / "nginx.conf"
    # A link, not a copy: nginx resolves `include conf.d/*.conf` next to the path it is given.
    if main.is_symlink() or main.exists():
        main.unlink()
    main.symlink_to(MAIN_CONF)
    return main
