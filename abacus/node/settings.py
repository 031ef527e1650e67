"""Settings, read from the environment once per process (docs/configuration.md)."""

from __future__ import annotations

import hmac
import ipaddress
import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from abacus.node.keys import KeyLayout

DEFAULT_ADD_DEADLINE_MS = 3000
# After its deadline an add may still be *resolved* (its lost EXEC learnt, a fence written) for
# this long; then it is answered whatever Redis does. nginx's proxy_read_timeout must be longer
# than deadline + grace (the local stack refuses a shorter one), so nginx never passes on an add
# a node is still deciding.
RESOLVE_GRACE_S = 0.8
# Longer than nginx may still pass a request on to another node (its 8 s read timeout, then 20 s
# of retries) plus a deadline and grace: the retry key's record, or its fence, outlives every try.
DEFAULT_RETRY_KEY_TTL_S = 120
# New Idempotency-Key records one client may make per window (one record lifetime, 24 h): with at
# most two windows' records alive, at most 2 x 100,000 x ~660 B (a 255-character key) = ~130 MB,
# a quarter of the 512 MB maxmemory of abacus/conf/redis.conf; and ~1.2 new keys/s all day long.
DEFAULT_KEYS_PER_CLIENT = 100_000
# Share of Redis's maxmemory from which new Idempotency-Keys are paused: the rest is headroom for
# what cannot wait (keyless adds' 2-minute retry records, the sum, the counters).
DEFAULT_KEY_STORE_LIMIT = 0.8
LOG_FORMATS = ("json", "text")
# Which requests a node writes an access line for: by default only those it did not answer 2xx
# (nginx's access line records every request: request id, node, status, time), since a JSON line
# per request was an eighth of a request's CPU (profiles of reads and of adds at 64 clients);
# "changes" adds every add and reset (with batch size, attempts and conflicts), "all" every read.
ACCESS_LOGS = ("errors", "changes", "all")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# The balancer's secret goes into nginx's configuration inside a quoted string and through a shell
# script in the nginx image: letters, digits and a few marks that need no quoting anywhere.
BALANCER_SECRET = re.compile(r"[A-Za-z0-9._~+/=-]{32,256}")
# Host names a node answers besides IP addresses (which DNS rebinding cannot use).
DEFAULT_SERVER_NAMES = ("localhost",)
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# The name both stacks give the primary their Sentinels watch (`sentinel monitor abacus ...`).
DEFAULT_SENTINEL_MASTER = "abacus"


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot run with."""


@dataclass(frozen=True)
class Settings:
    node_id: str
    redis_url: str
    redis_password: str | None
    key: str
    admin_token: str | None
    add_deadline_s: float
    max_batch: int
    # Shared by nginx and the nodes: a request that carries it comes from the balancer, so its
    # retry key and client address are the balancer's. None: nobody is trusted.
    balancer_secret: str | None
    idempotency_ttl_s: int
    retry_key_ttl_s: int
    # New Idempotency-Key records per client and window (key_quota.py); 0 means no quota.
    keys_per_client: int
    # Share of maxmemory from which new Idempotency-Keys are paused (memory_watch.py).
    key_store_limit: float
    log_level: str
    log_format: str
    # Where the node listens and how many Gunicorn workers it runs (read by gunicorn_conf.py and
    # `python -m abacus.node`, here so that a bad value is a clear message, not a traceback).
    host: str = "127.0.0.1"
    port: int = 8000
    web_concurrency: int = 2
    # Host header values (without port) this node serves; IP addresses are always served.
    server_names: tuple[str, ...] = DEFAULT_SERVER_NAMES
    # Sentinels (host, port) to ask for the primary instead of `redis_url`; () without Sentinel.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    # The name the Sentinels know the primary by.
    redis_sentinel_master: str = DEFAULT_SENTINEL_MASTER
    # Replicas that must confirm a write (WAIT / WAITAOF) before an answer reports it; 0: none.
    min_replica_acks: int = 0
    # One of ACCESS_LOGS.
    access_log: str = "errors"
    # Whether group commit's lanes take turns with the token (commit_turn.py); off for comparison.
    commit_turns: bool = True

    @property
    def sum_key(self) -> str:
        return self.key

    @property
    def own_record_ttl_s(self) -> int:
        """How long the record of a keyless add nobody else carries is kept: only until its lost
        EXEC, if any, can no longer be asked about (its answer is due by deadline + grace)."""
        return int(self.add_deadline_s + RESOLVE_GRACE_S) + 60

    @property
    def keys(self) -> KeyLayout:
        """Every Redis key this node uses (keys.py)."""
        return KeyLayout(self.key)

    def is_balancer(self, presented: str | None) -> bool:
        """Whether a request's secret header is the balancer's, compared in constant time."""
        if self.balancer_secret is None or presented is None:
            return False
        return hmac.compare_digest(presented.encode(), self.balancer_secret.encode())

    def serves_host(self, host: str) -> bool:
        """Whether a Host header (with or without port) names this service: a configured name,
        an IP address, or nothing (HTTP/1.0). Any other name may be DNS rebinding at work."""
        name = _host_name(host)
        return name == "" or name in self.server_names or _is_ip_address(name)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        password_file = env.get("REDIS_PASSWORD_FILE") or None
        password = _read("REDIS_PASSWORD_FILE", password_file) or None if password_file else None
        deadline_ms = _int(env, "ABACUS_ADD_DEADLINE_MS", DEFAULT_ADD_DEADLINE_MS, minimum=50)
        balancer_secret = _secret(env.get("ABACUS_BALANCER_SECRET_FILE") or None)
        admin_token = env.get("ABACUS_ADMIN_TOKEN") or None
        if admin_token is not None and not is_visible_ascii(admin_token):
            # An Authorization header carries visible ASCII only: such a token could never match.
            raise SettingsError("ABACUS_ADMIN_TOKEN must be visible ASCII characters only")
        sentinels = _sentinels(env.get("REDIS_SENTINELS"))
        if sentinels and env.get("REDIS_URL"):
            # Two answers to "where is Redis": refuse rather than silently pick one.
            raise SettingsError("set REDIS_URL or REDIS_SENTINELS, not both")
        return cls(
            node_id=env.get("NODE_ID") or socket.gethostname(),
            redis_url=env.get("REDIS_URL") or DEFAULT_REDIS_URL,
            redis_password=password,
            key=env.get("ABACUS_KEY") or "abacus:sum",
            admin_token=admin_token,
            add_deadline_s=deadline_ms / 1000,
            max_batch=_int(env, "ABACUS_MAX_BATCH", 256, minimum=1),
            balancer_secret=balancer_secret,
            idempotency_ttl_s=_int(env, "ABACUS_IDEMPOTENCY_TTL_S", 86400, minimum=1),
            retry_key_ttl_s=_int(
                env, "ABACUS_RETRY_KEY_TTL_S", DEFAULT_RETRY_KEY_TTL_S, minimum=30
            ),
            keys_per_client=_int(env, "ABACUS_KEYS_PER_CLIENT", DEFAULT_KEYS_PER_CLIENT, minimum=0),
            key_store_limit=_fraction(env, "ABACUS_KEY_STORE_LIMIT", DEFAULT_KEY_STORE_LIMIT),
            log_level=_choice(env, "LOG_LEVEL", "info", LOG_LEVELS),
            log_format=_choice(env, "LOG_FORMAT", "json", LOG_FORMATS),
            host=env.get("HOST") or "127.0.0.1",
            port=_int(env, "PORT", 8000, minimum=1, maximum=65535),
            web_concurrency=_int(env, "WEB_CONCURRENCY", 2, minimum=1),
            server_names=_server_names(env.get("ABACUS_SERVER_NAMES")),
            redis_sentinels=sentinels,
            redis_sentinel_master=_master_name(env.get("REDIS_SENTINEL_MASTER")),
            min_replica_acks=_int(env, "ABACUS_MIN_REPLICA_ACKS", 0, minimum=0),
            access_log=_choice(env, "ABACUS_ACCESS_LOG", "errors", ACCESS_LOGS),
            commit_turns=_choice(env, "ABACUS_COMMIT_TURNS", "on", ("on", "off")) == "on",
        )


def is_visible_ascii(value: str) -> bool:
    """Printable ASCII without space, what a token or key header may carry."""
    return all("!" <= c <= "~" for c in value)


def _int(
    env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be at most {maximum}, got {value}")
    return value


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    """A share above 0 and at most 1 (0.8 is 80%)."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a fraction such as 0.8, got {raw!r}") from None
    if not (math.isfinite(value) and 0 < value <= 1):
        raise SettingsError(f"{name} must be above 0 and at most 1, got {raw!r}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or default).lower()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _read(name: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{name}: cannot read {path}: {exc}") from None


def _secret(path: str | None) -> str | None:
    if path is None:
        return None
    secret = _read("ABACUS_BALANCER_SECRET_FILE", path)
    if not BALANCER_SECRET.fullmatch(secret):
        raise SettingsError(
            f"ABACUS_BALANCER_SECRET_FILE: {path} must hold 32 to 256 characters of A-Z a-z 0-9 "
            ". _ ~ + / = - (e.g. `python3 -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return secret


def _server_names(raw: str | None) -> tuple[str, ...]:
    if raw is None or not raw.strip():
        return DEFAULT_SERVER_NAMES
    names = tuple(name.lower().rstrip(".") for name in raw.replace(",", " ").split())
    for name in names:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", name):
            raise SettingsError(f"ABACUS_SERVER_NAMES: {name!r} is not a host name")
    return names


def _sentinels(raw: str | None) -> tuple[tuple[str, int], ...]:
    """`host:port` items, space- or comma-separated; an IPv6 host in brackets (`[::1]:26379`)."""
    if raw is None or not raw.strip():
        return ()
    found = []
    for item in raw.replace(",", " ").split():
        host, colon, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"REDIS_SENTINELS: {item!r} is not host:port")
        found.append((host, int(port)))
    return tuple(found)


def _master_name(raw: str | None) -> str:
    name = raw or DEFAULT_SENTINEL_MASTER
    # Sentinel's own rule for a master's name: it goes into its config file unquoted.
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name):
        raise SettingsError(f"REDIS_SENTINEL_MASTER: {name!r} is not a name Sentinel takes")
    return name


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    name = host.rpartition(":")[0] if ":" in host else host
    # "localhost." is the same name, fully qualified.
    return name.removesuffix(".")


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    return True
