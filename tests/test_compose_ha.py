"""compose.ha.yaml, proven without a Docker engine: the override is valid, merges with compose.yaml
into the replicated stack, generates each Sentinel's file into its tmpfs at start, keeps the Redis
password a secret, and agrees with the local stack's replicated mode (abacus/local_stack/
redis_ha.py). Its start scripts run here as written, with stand-ins for what only Docker has
(host names, the other Sentinels).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis
import yaml

from abacus import conf
from abacus.local_stack import redis_ha
from abacus.local_stack.ports import free_ports
from abacus.node.settings import Settings
from tests.stack_marker import require_stack_marker
from tests.test_compose import (
    COMPOSE_FILE,
    REDIS_CONF_IN_CONTAINER,
    ROOT,
    SCHEMA_FILE,
    SECRET,
    SECRET_PATH,
    raw_compose,
    resolve,
)
from tests.waiting import wait_until

HA_FILE = ROOT / "compose.ha.yaml"
NODES = ("node",)
INSTANCES = ("redis", "redis-2", "redis-3")
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")
SENTINEL_PORT = 26379
SENTINEL_DIR = "/run/sentinel"
SENTINEL_CONF_IN_CONTAINER = "/usr/local/etc/redis/sentinel.conf"
# Compose replaces these sequences instead of merging them (the Compose Specification's merge
# rules); the other sequences here are merged, mounts by their target.
REPLACED = {"command", "entrypoint", "test"}
PASSWORD = "a-Password.for_the~test"


@cache
def raw_override() -> dict[str, Any]:
    loaded = yaml.safe_load(HA_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def merge(base: Any, override: Any, key: str = "") -> Any:
    """Compose's merge of an override file into a base one, for the shapes these files use."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = merge(base[name], value, name) if name in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list) and key not in REPLACED:
        if key == "volumes":
            targets = {_target(mount) for mount in override}
            return [m for m in base if _target(m) not in targets] + override
        return base + [item for item in override if item not in base]
    return override


def _target(mount: str) -> str:
    return mount.split(":")[1]


def stack_for(env: dict[str, str]) -> dict[str, Any]:
    merged = merge(raw_compose(), raw_override())
    resolved = resolve(merged, env)
    assert isinstance(resolved, dict)
    return resolved


@pytest.fixture(scope="module")
def ha() -> dict[str, Any]:
    """`docker compose -f compose.yaml -f compose.ha.yaml` as a fresh clone gets it."""
    return stack_for({})


def service(stack: dict[str, Any], name: str) -> dict[str, Any]:
    found = stack["services"][name]
    assert isinstance(found, dict)
    return found


def environment(stack: dict[str, Any], name: str) -> dict[str, str]:
    env = service(stack, name).get("environment", {})
    return {key: "" if value is None else str(value) for key, value in env.items()}


def script(stack: dict[str, Any], name: str) -> str:
    shell, flags, text = service(stack, name)["command"]
    assert (shell, flags) == ("sh", "-ec")
    assert isinstance(text, str)
    return text


# --- The files ----------------------------------------------------------------------------------


def test_the_override_and_the_merged_stack_are_valid_compose(ha: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA_FILE.read_text()))
    for document in (raw_override(), ha):
        errors = [
            f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(document)
        ]
        assert errors == []
    assert "${" not in json.dumps(ha), "a fresh clone needs no variable"


def test_the_override_adds_two_replicas_and_three_sentinels(ha: dict[str, Any]) -> None:
    added = set(ha["services"]) - set(raw_compose()["services"])
    assert added == {"redis-2", "redis-3", *SENTINELS}
    for name in ("redis-2", "redis-3"):
        assert service(ha, name)["depends_on"] == {"redis": {"condition": "service_healthy"}}


def test_the_nodes_find_the_primary_through_the_sentinels_and_wait_for_a_replica(
    ha: dict[str, Any],
) -> None:
    secret_file = ROOT / ha["secrets"][SECRET]["file"]
    for name in NODES:
        env = {**environment(ha, name), "REDIS_PASSWORD_FILE": str(secret_file)}
        env["ABACUS_BALANCER_SECRET_FILE"] = str(ROOT / ha["secrets"]["balancer_secret"]["file"])
        settings = Settings.from_env(env)
        assert settings.redis_sentinels == tuple((s, SENTINEL_PORT) for s in SENTINELS)
        assert settings.redis_sentinel_master == redis_ha.MASTER
        assert settings.min_replica_acks == 1, "the replicated stack's default"
        assert settings.redis_password == secret_file.read_text().strip()
        healthy = {"condition": "service_healthy"}
        assert service(ha, name)["depends_on"] == {
            "redis": healthy,
            **dict.fromkeys(SENTINELS, healthy),
        }
        assert (
            environment(stack_for({"ABACUS_MIN_REPLICA_ACKS": "0"}), name)[
                "ABACUS_MIN_REPLICA_ACKS"
            ]
            == "0"
        ), ".env decides"


@pytest.mark.parametrize("name", [*INSTANCES[1:], *SENTINELS])
def test_every_new_service_is_hardened_internal_and_health_checked(
    ha: dict[str, Any], name: str
) -> None:
    current = service(ha, name)
    assert current["read_only"] is True
    assert current["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in current["security_opt"]
    assert current["user"] == "redis"
    assert current["image"] == service(ha, "redis")["image"], "one Redis image, Sentinel included"
    assert current["networks"] == ["back"]
    assert "ports" not in current
    assert current["restart"] == "unless-stopped"
    assert current["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}
    assert current["secrets"] == [SECRET]


def test_every_redis_runs_the_shared_config_with_data_of_its_own(ha: dict[str, Any]) -> None:
    data_volumes = []
    for name in INSTANCES:
        mounts = service(ha, name)["volumes"]
        assert f"./abacus/conf/redis.conf:{REDIS_CONF_IN_CONTAINER}:ro" in mounts
        (data,) = [m.split(":")[0] for m in mounts if _target(m) == "/data"]
        data_volumes.append(data)
        assert data in ha["volumes"]
        assert script(ha, name) == script(ha, "redis"), "one start script for every instance"
        assert environment(ha, name)["ABACUS_REDIS_HOST"] == name
        assert environment(ha, name)["ABACUS_FIRST_PRIMARY"] == "redis"
    assert len(set(data_volumes)) == len(INSTANCES)


def test_sentinels_write_only_their_tmpfs_and_read_the_shared_lines(ha: dict[str, Any]) -> None:
    for name in SENTINELS:
        sentinel = service(ha, name)
        assert [entry.split(":")[0] for entry in sentinel["tmpfs"]] == [SENTINEL_DIR]
        assert sentinel["volumes"] == [
            f"./{conf.SENTINEL_CONF.relative_to(ROOT)}:{SENTINEL_CONF_IN_CONTAINER}:ro"
        ]
        assert environment(ha, name)["ABACUS_SENTINEL_HOST"] == name
        assert 'exec redis-server "$config" --sentinel' in script(ha, name)
        assert f"config={SENTINEL_DIR}/sentinel.conf" in script(ha, name)


def test_the_redis_password_stays_a_secret(ha: dict[str, Any]) -> None:
    dev_password = (ROOT / ha["secrets"][SECRET]["file"]).read_text().strip()
    assert dev_password not in HA_FILE.read_text()
    for name in (*INSTANCES, *SENTINELS):
        assert SECRET_PATH in script(ha, name)
        assert not any("PASS" in key for key in environment(ha, name))
        assert "requirepass" not in " ".join(service(ha, name)["command"][:2])


def test_it_agrees_with_the_local_stack_s_replicated_mode(ha: dict[str, Any]) -> None:
    """One design, two stacks: the same master name, quorum and min-replicas-to-write."""
    sentinel = script(ha, "sentinel-1")
    (monitor,) = re.findall(r"sentinel monitor (\S+) \S+ (\d+) (\d+)", sentinel)
    assert monitor == (redis_ha.MASTER, "6379", str(redis_ha.QUORUM))
    assert f"get-master-addr-by-name {redis_ha.MASTER}" in sentinel
    assert f"min-replicas-to-write {redis_ha.MIN_REPLICAS_TO_WRITE}\n" in script(ha, "redis")
    assert f"get-master-addr-by-name {redis_ha.MASTER}" in script(ha, "redis")
    assert "replica-announce-ip $ABACUS_REDIS_HOST" in script(ha, "redis")
    assert "masterauth" in script(ha, "redis")
    assert f"port {SENTINEL_PORT}" in sentinel


def test_compose_yaml_alone_is_still_one_redis() -> None:
    base = resolve(raw_compose(), {})
    assert "redis-2" not in base["services"]
    assert "ABACUS_REDIS_HOST" not in COMPOSE_FILE.read_text()


# --- The start scripts, run --------------------------------------------------------------------


class ScriptRun:
    """A service's start script run here: its container paths mapped into a directory, and on
    PATH a `redis-cli` that answers as the other Sentinels would (`named`: the primary they name,
    None: none answers), plus, with `capture`, a `redis-server` that records its arguments."""

    def __init__(self, directory: Path, password: str = PASSWORD) -> None:
        self.directory = directory
        self.bin = directory / "bin"
        self.bin.mkdir()
        self.secret = directory / "secret"
        self.secret.write_text(password + "\n")
        self.password = password
        self.tmpfs = directory / "tmpfs"
        self.tmpfs.mkdir()

    def answer(self, named: str | None) -> None:
        shim = self.bin / "redis-cli"
        answer = "" if named is None else f"{named}\\n6379\\n"
        shim.write_text(f"#!/bin/sh\nprintf '{answer}'\n")
        shim.chmod(0o755)

    def capture_server(self) -> Path:
        captured = self.directory / "redis-server-argv"
        shim = self.bin / "redis-server"
        shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{captured}"\n')
        shim.chmod(0o755)
        return captured

    def localize(self, text: str, port: int | None = None) -> str:
        mapped = (
            text.replace(SECRET_PATH, str(self.secret))
            .replace(SENTINEL_DIR, str(self.tmpfs))
            .replace(SENTINEL_CONF_IN_CONTAINER, str(conf.SENTINEL_CONF))
            .replace(REDIS_CONF_IN_CONTAINER, str(conf.REDIS_CONF))
        )
        if port is not None:
            mapped = mapped.replace("--bind 0.0.0.0", f"--bind 127.0.0.1 --port {port}")
        return mapped

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": f"{self.bin}:{os.environ['PATH']}", **extra}


@pytest.fixture
def script_run(request: pytest.FixtureRequest, tmp_path: Path) -> ScriptRun:
    require_stack_marker(request, "script_run")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (make test installs it)")
    return ScriptRun(tmp_path)


def run_sentinel_script(
    ha: dict[str, Any], run: ScriptRun, named: str | None
) -> tuple[str, list[str]]:
    """The file sentinel-1 writes, and the arguments it starts redis-server with."""
    run.answer(named)
    captured = run.capture_server()
    result = subprocess.run(
        ["sh", "-ec", run.localize(script(ha, "sentinel-1"))],
        env=run.env(**environment(ha, "sentinel-1")),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    written = run.tmpfs / "sentinel.conf"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600, "it holds the password"
    return written.read_text(), captured.read_text().split()


@pytest.mark.stack
@pytest.mark.parametrize(("named", "monitored"), [(None, "redis"), ("redis-3", "redis-3")])
def test_a_sentinel_writes_its_file_into_the_tmpfs_at_start(
    ha: dict[str, Any], script_run: ScriptRun, named: str | None, monitored: str
) -> None:
    """It monitors the primary another Sentinel names (after a failover, not the first one),
    else the first; then the shared lines; then it starts from that file."""
    written, argv = run_sentinel_script(ha, script_run, named)
    assert argv == [str(script_run.tmpfs / "sentinel.conf"), "--sentinel"]
    lines = written.splitlines()
    own = lines[: lines.index(conf.SENTINEL_CONF.read_text().splitlines()[0])]
    assert own == [
        f"port {SENTINEL_PORT}",
        f"dir {script_run.tmpfs}",
        "sentinel resolve-hostnames yes",
        "sentinel announce-hostnames yes",
        "sentinel announce-ip sentinel-1",
        f"sentinel monitor {redis_ha.MASTER} {monitored} 6379 {redis_ha.QUORUM}",
        f"sentinel auth-pass {redis_ha.MASTER} {script_run.password}",
    ]
    assert written.endswith(conf.SENTINEL_CONF.read_text())


@pytest.mark.stack
def test_the_sentinel_file_is_one_redis_server_starts_from(
    ha: dict[str, Any], script_run: ScriptRun
) -> None:
    """The generated file, with its port and primary made local (Docker's names do not resolve
    here), run by the real redis-server in Sentinel mode: the shared lines take effect."""
    written, _ = run_sentinel_script(ha, script_run, None)
    port, primary = free_ports(2)
    local = written.replace(f"port {SENTINEL_PORT}", f"port {port}").replace(
        f"{redis_ha.MASTER} redis 6379", f"{redis_ha.MASTER} 127.0.0.1 {primary}"
    )
    path = script_run.tmpfs / "local.conf"
    path.write_text(local)
    with running([shutil.which("redis-server") or "redis-server", str(path), "--sentinel"]):
        client = redis.Redis(port=port, socket_timeout=5)
        with contextlib.closing(client):
            assert wait_until(lambda: _answers(client)), "the Sentinel started"
            state = client.sentinel_master(redis_ha.MASTER)
            assert isinstance(state, dict)
    assert state["quorum"] == redis_ha.QUORUM
    # `sentinel <option> abacus <value>` lines
    shared = {
        words[1]: words[3]
        for words in map(str.split, conf.SENTINEL_CONF.read_text().splitlines())
        if words[:1] == ["sentinel"]
    }
    for name in ("down-after-milliseconds", "failover-timeout", "parallel-syncs"):
        assert state[name] == int(shared[name]), name


@pytest.mark.stack
@pytest.mark.parametrize(
    "case",
    [
        # (the service, the primary the Sentinels name, its role, the primary it follows)
        ("redis", None, "master", None),
        ("redis-2", None, "slave", "redis"),
        ("redis", "redis-3", "slave", "redis-3"),
        ("redis-3", "redis-3", "master", None),
    ],
)
def test_a_redis_starts_as_the_primary_or_a_replica_of_the_one_the_sentinels_name(
    ha: dict[str, Any],
    script_run: ScriptRun,
    case: tuple[str, str | None, str, str | None],
) -> None:
    host, named, role, follows = case
    script_run.answer(named)
    (port,) = free_ports(1)
    env = {**environment(ha, host), "ABACUS_REDIS_HOST": host}
    command = ["sh", "-ec", script_run.localize(script(ha, host), port)]
    with running(command, env=script_run.env(**env), cwd=script_run.directory):
        client = redis.Redis(port=port, password=script_run.password, socket_timeout=5)
        with contextlib.closing(client):
            assert wait_until(lambda: _answers(client)), "redis-server started"
            replication = client.info("replication")
            settings = {
                key: client.config_get(key)[key]
                for key in ("masterauth", "replica-announce-ip", "min-replicas-to-write")
            }
            anonymous = redis.Redis(port=port, socket_timeout=5)
            with contextlib.closing(anonymous), pytest.raises(redis.AuthenticationError):
                anonymous.ping()
    assert replication["role"] == role
    assert replication.get("master_host") == follows
    assert settings == {
        "masterauth": script_run.password,
        "replica-announce-ip": host,
        "min-replicas-to-write": str(redis_ha.MIN_REPLICAS_TO_WRITE),
    }


@contextlib.contextmanager
def running(
    argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.mark.stack
def test_a_killed_primary_started_during_its_failover_waits_and_follows_the_promoted_one(
    ha: dict[str, Any], script_run: ScriptRun
) -> None:
    # Sentinels that name `redis` and see it down for three polls, then name redis-2.
    polls = script_run.directory / "polls"
    shim = script_run.bin / "redis-cli"
    shim.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        "  *get-master-addr-by-name*)\n"
        f'    n=$(($(cat "{polls}" 2>/dev/null || echo 0) + 1)); echo "$n" > "{polls}"\n'
        "    if [ \"$n\" -le 3 ]; then printf 'redis\\n6379\\n';\n"
        "    else printf 'redis-2\\n6379\\n'; fi ;;\n"
        "  *'SENTINEL master'*) printf 'name\\nabacus\\nflags\\nmaster,s_down,o_down\\n' ;;\n"
        "esac\n"
    )
    shim.chmod(0o755)
    (port,) = free_ports(1)
    env = {**environment(ha, "redis"), "ABACUS_REDIS_HOST": "redis"}
    command = ["sh", "-ec", script_run.localize(script(ha, "redis"), port)]
    with running(command, env=script_run.env(**env), cwd=script_run.directory):
        client = redis.Redis(port=port, password=script_run.password, socket_timeout=5)
        with contextlib.closing(client):
            assert wait_until(lambda: _answers(client)), "redis-server started"
            replication = client.info("replication")
    assert replication["role"] == "slave", "not a second primary beside the promoted one"
    assert replication["master_host"] == "redis-2"
    assert int(polls.read_text()) == 4, "it asked until the Sentinels named another"


def test_the_containers_wait_for_a_failover_at_least_as_long_as_the_local_stack(
    ha: dict[str, Any],
) -> None:
    text = script(ha, "redis")
    polls = re.search(r'"\$polls" -lt (\d+)', text)
    pause = re.search(r"sleep ([0-9.]+)\n", text)
    assert polls is not None
    assert pause is not None
    assert int(polls.group(1)) * float(pause.group(1)) >= redis_ha.failover_wait_s()
