"""The balancer's configuration: the shared template, rendered as the official nginx image does.

The image runs `envsubst` over /etc/nginx/templates/*.template with the names of the variables
that are set, so `${NAME}` is replaced only when NAME is set and nginx's own `$variables` stay.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAIN_CONF = ROOT / "nginx" / "nginx.conf"
TEMPLATE = ROOT / "nginx" / "templates" / "abacus.conf.template"

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Passive health: a node that fails once is left out for this long.
FAIL_TIMEOUT_S = 2
DEFAULT_RATE_LIMIT = 1000
DEFAULT_RATE_BURST = 2000


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
    proxy_bind: str,
    rate_limit: bool,
    rate_per_s: int = DEFAULT_RATE_LIMIT,
    rate_burst: int = DEFAULT_RATE_BURST,
) -> dict[str, str]:
    return {
        "ABACUS_LISTEN": f"127.0.0.1:{listen_port}",
        "ABACUS_UPSTREAM_SERVERS": upstream_servers([f"127.0.0.1:{p}" for p in node_ports]),
        "ABACUS_RESOLVER": "",
        "ABACUS_PROXY_BIND": proxy_bind,
        "ABACUS_RATE_LIMIT": str(rate_per_s),
        "ABACUS_RATE_BURST": str(rate_burst),
        "ABACUS_RATE_LIMIT_ENABLED": "on" if rate_limit else "off",
    }


def write_prefix(prefix: Path, env: Mapping[str, str]) -> Path:
    """Lay out an nginx prefix directory using the shared files; returns the main conf path."""
    (prefix / "conf.d").mkdir(parents=True, exist_ok=True)
    (prefix / "tmp").mkdir(exist_ok=True)
    rendered = render(TEMPLATE.read_text(), env)
    (prefix / "conf.d" / "abacus.conf").write_text(rendered)
    main = prefix / "nginx.conf"
    # A link, not a copy: nginx resolves `include conf.d/*.conf` next to the path it is given.
    if main.is_symlink() or main.exists():
        main.unlink()
    main.symlink_to(MAIN_CONF)
    return main
