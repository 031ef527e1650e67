"""Settings from the environment: the documented defaults, each variable, and every refusal."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from abacus.node.settings import RESOLVE_GRACE_S, Settings, SettingsError


def test_defaults_of_an_empty_environment() -> None:
    settings = Settings.from_env({})
    assert settings.node_id == socket.gethostname()
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.redis_password is None
    assert settings.key == settings.sum_key == "abacus:sum"
    assert settings.admin_token is None
    assert settings.add_deadline_s == 3.0
    assert settings.max_batch == 256
    assert settings.balancer_secret is None
    assert settings.server_names == ("localhost",)
    assert settings.idempotency_ttl_s == 86400
    assert settings.retry_key_ttl_s == 120
    assert settings.keys_per_client == 100_000
    assert settings.key_store_limit == 0.8
    assert (settings.log_level, settings.log_format) == ("info", "json")
    assert (settings.host, settings.port, settings.web_concurrency) == ("127.0.0.1", 8000, 2)


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "NODE_ID": "node-7",
            "REDIS_URL": "redis://redis:6379/2",
            "ABACUS_KEY": "tenant:sum",
            "ABACUS_ADMIN_TOKEN": "s3cret",
            "ABACUS_ADD_DEADLINE_MS": "1500",
            "ABACUS_MAX_BATCH": "1",
            "ABACUS_SERVER_NAMES": "abacus.example.com, Api.Example. localhost",
            "ABACUS_IDEMPOTENCY_TTL_S": "60",
            "ABACUS_RETRY_KEY_TTL_S": "30",
            "ABACUS_KEYS_PER_CLIENT": "5",
            "ABACUS_KEY_STORE_LIMIT": "0.5",
            "LOG_LEVEL": "DEBUG",
            "LOG_FORMAT": "Text",
            "HOST": "0.0.0.0",
            "PORT": "8001",
            "WEB_CONCURRENCY": "3",
        }
    )
    assert settings.node_id == "node-7"
    assert settings.redis_url == "redis://redis:6379/2"
    assert settings.sum_key == "tenant:sum"
    assert settings.admin_token == "s3cret"
    assert settings.add_deadline_s == 1.5
    assert settings.max_batch == 1
    assert settings.server_names == ("abacus.example.com", "api.example", "localhost")
    assert settings.idempotency_ttl_s == 60
    assert settings.retry_key_ttl_s == 30
    assert settings.keys_per_client == 5
    assert settings.key_store_limit == 0.5
    assert (settings.log_level, settings.log_format) == ("debug", "text")
    assert (settings.host, settings.port, settings.web_concurrency) == ("0.0.0.0", 8001, 3)


def test_empty_values_mean_the_default() -> None:
    empty = {
        name: ""
        for name in (
            "NODE_ID",
            "REDIS_URL",
            "REDIS_PASSWORD_FILE",
            "ABACUS_KEY",
            "ABACUS_ADMIN_TOKEN",
            "ABACUS_ADD_DEADLINE_MS",
            "ABACUS_MAX_BATCH",
            "ABACUS_KEYS_PER_CLIENT",
            "ABACUS_KEY_STORE_LIMIT",
            "LOG_LEVEL",
            "LOG_FORMAT",
            "ABACUS_BALANCER_SECRET_FILE",
            "ABACUS_SERVER_NAMES",
            "REDIS_SENTINELS",
            "REDIS_SENTINEL_MASTER",
            "ABACUS_MIN_REPLICA_ACKS",
            "ABACUS_ACCESS_LOG",
            "ABACUS_COMMIT_TURNS",
        )
    }
    assert Settings.from_env(empty) == Settings.from_env({})


def test_the_process_environment_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_ID", "from-os-environ")
    assert Settings.from_env().node_id == "from-os-environ"


def test_the_key_layout_is_read_from_abacus_key() -> None:
    assert Settings.from_env({"ABACUS_KEY": "t:sum"}).keys.sum == "t:sum"


SECRET = "0123456789abcdef0123456789abcdef"


def secret_settings(tmp_path: Path, secret: str = SECRET) -> Settings:
    path = tmp_path / "balancer_secret"
    path.write_text(secret + "\n", encoding="utf-8")
    return Settings.from_env({"ABACUS_BALANCER_SECRET_FILE": str(path)})


@pytest.mark.parametrize(
    ("presented", "trusted"),
    [
        (SECRET, True),
        (SECRET[:-1], False),
        (SECRET + "0", False),
        (SECRET.upper(), False),
        ("", False),
        (None, False),
    ],
)
def test_only_the_exact_secret_is_the_balancers(
    tmp_path: Path, presented: str | None, trusted: bool
) -> None:
    settings = secret_settings(tmp_path)
    assert settings.balancer_secret == SECRET, "read from its file, newline stripped"
    assert settings.is_balancer(presented) is trusted


def test_the_secret_is_compared_in_constant_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []

    def compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return a == b

    monkeypatch.setattr("abacus.node.settings.hmac.compare_digest", compare_digest)
    assert secret_settings(tmp_path).is_balancer("x" * 32) is False
    assert compared == [(b"x" * 32, SECRET.encode())]


def test_without_a_secret_nobody_is_the_balancer() -> None:
    assert Settings.from_env({}).is_balancer("") is False
    assert Settings.from_env({}).is_balancer(SECRET) is False


@pytest.mark.parametrize(
    "secret", ["short", "x" * 31, "x" * 257, "has space" + "x" * 30, 'quote"' + "x" * 30, "$" * 40]
)
def test_a_secret_nginx_could_not_carry_is_refused(tmp_path: Path, secret: str) -> None:
    with pytest.raises(SettingsError, match=r"ABACUS_BALANCER_SECRET_FILE: .* must hold 32 to 256"):
        secret_settings(tmp_path, secret)


def test_a_missing_secret_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="ABACUS_BALANCER_SECRET_FILE: cannot read"):
        Settings.from_env({"ABACUS_BALANCER_SECRET_FILE": str(tmp_path / "nothing")})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ABACUS_ADD_DEADLINE_MS", "3s", "ABACUS_ADD_DEADLINE_MS must be a whole number"),
        ("ABACUS_ADD_DEADLINE_MS", "49", "ABACUS_ADD_DEADLINE_MS must be at least 50"),
        ("ABACUS_MAX_BATCH", "0", "ABACUS_MAX_BATCH must be at least 1"),
        ("ABACUS_MAX_BATCH", "1.5", "ABACUS_MAX_BATCH must be a whole number"),
        ("ABACUS_IDEMPOTENCY_TTL_S", "0", "ABACUS_IDEMPOTENCY_TTL_S must be at least 1"),
        ("ABACUS_RETRY_KEY_TTL_S", "29", "ABACUS_RETRY_KEY_TTL_S must be at least 30"),
        ("ABACUS_KEYS_PER_CLIENT", "-1", "ABACUS_KEYS_PER_CLIENT must be at least 0"),
        ("ABACUS_KEYS_PER_CLIENT", "1e5", "ABACUS_KEYS_PER_CLIENT must be a whole number"),
        ("ABACUS_KEY_STORE_LIMIT", "0", "ABACUS_KEY_STORE_LIMIT must be above 0 and at most 1"),
        ("ABACUS_KEY_STORE_LIMIT", "1.01", "ABACUS_KEY_STORE_LIMIT must be above 0 and at most 1"),
        ("ABACUS_KEY_STORE_LIMIT", "nan", "ABACUS_KEY_STORE_LIMIT must be above 0 and at most 1"),
        ("ABACUS_KEY_STORE_LIMIT", "80%", "ABACUS_KEY_STORE_LIMIT must be a fraction"),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL must be one of debug, info"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be one of json, text"),
        ("ABACUS_SERVER_NAMES", "localhost, bad_name", "ABACUS_SERVER_NAMES: 'bad_name'"),
        ("ABACUS_SERVER_NAMES", "-x.example", "ABACUS_SERVER_NAMES: '-x.example'"),
        ("PORT", "http", "PORT must be a whole number"),
        ("PORT", "0", "PORT must be at least 1"),
        ("PORT", "65536", "PORT must be at most 65535"),
        ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY must be at least 1"),
        ("WEB_CONCURRENCY", "two", "WEB_CONCURRENCY must be a whole number"),
        # A token that no Authorization header can carry would lock reset for good.
        ("ABACUS_ADMIN_TOKEN", "pässword", "ABACUS_ADMIN_TOKEN must be visible ASCII"),
        ("ABACUS_ADMIN_TOKEN", "two words", "ABACUS_ADMIN_TOKEN must be visible ASCII"),
    ],
)
def test_unusable_values_are_refused_by_name(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({name: value})
    assert str(refused.value).startswith(message)


def test_the_redis_password_comes_from_its_file(tmp_path: Path) -> None:
    secret = tmp_path / "redis_password"
    secret.write_text("hunter2\n", encoding="utf-8")
    assert Settings.from_env({"REDIS_PASSWORD_FILE": str(secret)}).redis_password == "hunter2"


def test_an_empty_password_file_means_no_password(tmp_path: Path) -> None:
    secret = tmp_path / "redis_password"
    secret.write_text("\n", encoding="utf-8")
    assert Settings.from_env({"REDIS_PASSWORD_FILE": str(secret)}).redis_password is None


def test_an_unreadable_password_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(SettingsError, match=f"REDIS_PASSWORD_FILE: cannot read {missing}"):
        Settings.from_env({"REDIS_PASSWORD_FILE": str(missing)})


def test_an_own_record_outlives_the_answer_to_its_add() -> None:
    settings = Settings.from_env({"ABACUS_ADD_DEADLINE_MS": "3000"})
    assert settings.own_record_ttl_s == int(3.0 + RESOLVE_GRACE_S) + 60


def test_without_sentinels_the_nodes_use_redis_url_and_wait_for_no_replica() -> None:
    settings = Settings.from_env({})
    assert settings.redis_sentinels == ()
    assert settings.redis_sentinel_master == "abacus"
    assert settings.min_replica_acks == 0


def test_sentinels_are_host_port_items_and_name_the_primary() -> None:
    settings = Settings.from_env(
        {
            "REDIS_SENTINELS": "sentinel-1:26379, sentinel-2:26379 [::1]:26380",
            "REDIS_SENTINEL_MASTER": "ledger.primary-1",
            "ABACUS_MIN_REPLICA_ACKS": "2",
        }
    )
    assert settings.redis_sentinels == (
        ("sentinel-1", 26379),
        ("sentinel-2", 26379),
        ("::1", 26380),
    )
    assert settings.redis_sentinel_master == "ledger.primary-1"
    assert settings.min_replica_acks == 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_SENTINELS": "sentinel-1"}, "REDIS_SENTINELS: 'sentinel-1' is not host:port"),
        ({"REDIS_SENTINELS": ":26379"}, "is not host:port"),
        ({"REDIS_SENTINELS": "s:0"}, "is not host:port"),
        ({"REDIS_SENTINELS": "s:65536"}, "is not host:port"),
        ({"REDIS_SENTINELS": "s:port"}, "is not host:port"),
        ({"REDIS_SENTINEL_MASTER": "two words"}, "REDIS_SENTINEL_MASTER"),
        ({"ABACUS_MIN_REPLICA_ACKS": "-1"}, "ABACUS_MIN_REPLICA_ACKS must be at least 0"),
        ({"ABACUS_ACCESS_LOG": "reads"}, "ABACUS_ACCESS_LOG"),
        ({"ABACUS_COMMIT_TURNS": "yes"}, "ABACUS_COMMIT_TURNS"),
        (
            {"REDIS_SENTINELS": "s:26379", "REDIS_URL": "redis://r:6379/0"},
            "set REDIS_URL or REDIS_SENTINELS, not both",
        ),
    ],
)
def test_sentinel_and_replica_settings_refuse_what_cannot_work(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env(env)


def test_an_empty_redis_url_leaves_the_sentinels_in_charge() -> None:
    """What the stacks set (compose's empty-means-default rule): no conflict."""
    settings = Settings.from_env({"REDIS_URL": "", "REDIS_SENTINELS": "s:26379"})
    assert settings.redis_sentinels == (("s", 26379),)


def test_the_access_log_leaves_successful_reads_to_nginx_unless_asked() -> None:
    assert Settings.from_env({}).access_log == "errors"
    assert Settings.from_env({"ABACUS_ACCESS_LOG": "changes"}).access_log == "changes"
    assert Settings.from_env({"ABACUS_ACCESS_LOG": "all"}).access_log == "all"
