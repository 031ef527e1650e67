"""compose.monitoring.yaml, proven without a Docker engine: the override is valid Compose alone and
merged over compose.yaml, and over compose.yaml with compose.ha.yaml; Prometheus reaches the nodes
on the internal back network and scrapes them by the name of their one scalable service; Grafana
is published on loopback only; every file they mount is the shared one of abacus/conf/ and is
where their configuration looks for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

from abacus import conf
from abacus.kubernetes import nodes
from tests.test_compose import ROOT, SCHEMA_FILE, raw_compose, resolve, version_of
from tests.test_compose_ha import merge, raw_override

MONITORING_FILE = ROOT / "compose.monitoring.yaml"
SERVICES = {"prometheus", "grafana"}
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
GRAFANA_SECRET = "grafana_admin_password"


@cache
def raw_monitoring() -> dict[str, Any]:
    loaded = yaml.safe_load(MONITORING_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def resolved(document: dict[str, Any]) -> dict[str, Any]:
    """As a fresh clone gets it: no .env, nothing from the shell."""
    found = resolve(document, {})
    assert isinstance(found, dict)
    return found


STACKS: dict[str, Callable[[], dict[str, Any]]] = {
    "alone": raw_monitoring,
    "compose.yaml": lambda: dict(merge(raw_compose(), raw_monitoring())),
    "compose.yaml+ha": lambda: dict(merge(merge(raw_compose(), raw_override()), raw_monitoring())),
}


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    """`docker compose -f compose.yaml -f compose.monitoring.yaml` as a fresh clone gets it."""
    return resolved(STACKS["compose.yaml"]())


def service(stack: dict[str, Any], name: str) -> dict[str, Any]:
    found = stack["services"][name]
    assert isinstance(found, dict)
    return found


def mounts(stack: dict[str, Any], name: str) -> dict[str, tuple[Path, str]]:
    """Bind mounts of a service: target in the container -> (source on the host, options)."""
    found = {}
    for volume in service(stack, name)["volumes"]:
        source, target, *options = volume.split(":")
        if source.startswith("./"):
            found[target] = ((ROOT / source).resolve(), ":".join(options))
    return found


@pytest.mark.parametrize("combination", sorted(STACKS))
def test_the_override_is_valid_compose_alone_and_over_each_stack(combination: str) -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA_FILE.read_text()))
    document = resolved(STACKS[combination]())
    for candidate in (STACKS[combination](), document):
        errors = [
            f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(candidate)
        ]
        assert errors == []
    assert "${" not in json.dumps(document), "a fresh clone needs no variable"
    assert set(document["services"]) >= SERVICES
    if combination != "alone":
        # It adds, and changes nothing of the stack beneath it.
        below = (
            raw_compose() if combination == "compose.yaml" else merge(raw_compose(), raw_override())
        )
        for name, definition in resolved(below)["services"].items():
            assert document["services"][name] == definition
        assert document["networks"]["back"] == {"internal": True}


def test_it_adds_prometheus_and_grafana_only(stack: dict[str, Any]) -> None:
    assert set(raw_monitoring()["services"]) == SERVICES


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_the_images_are_pinned(stack: dict[str, Any], name: str) -> None:
    image = service(stack, name)["image"]
    repository, _, tag = image.rpartition(":")
    # Prometheus tags its images v3.5.0, Grafana 12.2.1.
    assert len(version_of(f"{repository}:{tag.removeprefix('v')}")) == 3, f"{image}: pin x.y.z"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_is_hardened_limited_and_health_checked(
    stack: dict[str, Any], name: str
) -> None:
    current = service(stack, name)
    assert current["read_only"] is True
    assert current["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in current["security_opt"]
    assert current["restart"] == "unless-stopped"
    assert set(current["deploy"]["resources"]["limits"]) == {"cpus", "memory"}
    check = current["healthcheck"]
    assert check["test"][0] == "CMD"
    assert "curl" not in " ".join(check["test"]), "the images have busybox wget, no curl"
    for mount in service(stack, name)["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert mount.endswith(":ro"), f"{name}: {mount} is configuration, read-only"


def test_prometheus_is_on_the_back_network_where_the_nodes_are(stack: dict[str, Any]) -> None:
    assert set(service(stack, "prometheus")["networks"]) == {"back", "monitoring"}
    assert service(stack, "node")["networks"] == ["back"]
    assert stack["networks"]["back"]["internal"] is True
    # Grafana needs Prometheus only; the nodes and Redis stay out of its reach.
    assert service(stack, "grafana")["networks"] == ["monitoring"]
    assert not stack["networks"]["monitoring"].get("internal", False), "it publishes ports"


def test_only_loopback_ports_are_published(stack: dict[str, Any]) -> None:
    assert service(stack, "grafana")["ports"] == [f"127.0.0.1:{GRAFANA_PORT}:{GRAFANA_PORT}"]
    assert service(stack, "prometheus")["ports"] == [
        f"127.0.0.1:{PROMETHEUS_PORT}:{PROMETHEUS_PORT}"
    ]
    assert "ports" not in service(stack, "node"), "scraped on back, never published"


def test_prometheus_loads_the_shared_configuration_and_rules(stack: dict[str, Any]) -> None:
    prometheus = service(stack, "prometheus")
    (config_flag,) = [arg for arg in prometheus["command"] if arg.startswith("--config.file=")]
    config_path = PurePosixPath(config_flag.split("=", 1)[1])
    found = mounts(stack, "prometheus")
    source, _ = found[str(config_path.parent)]
    assert source == conf.PROMETHEUS_DIR
    assert source / config_path.name == conf.PROMETHEUS_CONFIG
    config = yaml.safe_load(conf.PROMETHEUS_CONFIG.read_text())
    for rule_file in config["rule_files"]:
        # Relative to the configuration's directory, where the same mount puts the rules.
        assert (source / rule_file).resolve() == conf.PROMETHEUS_RULES
    assert any(arg.startswith("--storage.tsdb.retention.time=") for arg in prometheus["command"])


def test_prometheus_scrapes_the_node_service_by_name_on_its_port(stack: dict[str, Any]) -> None:
    config = yaml.safe_load(conf.PROMETHEUS_CONFIG.read_text())
    (job,) = [job for job in config["scrape_configs"] if "dns_sd_configs" in job]
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["node"]
    assert "node" in stack["services"]
    assert discovery["port"] == nodes.PORT
    assert service(stack, "node")["environment"].get("PORT", str(nodes.PORT)) == str(nodes.PORT)


def test_grafana_gets_the_shared_provisioning_and_dashboard(stack: dict[str, Any]) -> None:
    found = mounts(stack, "grafana")
    datasources = found["/etc/grafana/provisioning/datasources"][0]
    providers = found["/etc/grafana/provisioning/dashboards"][0]
    assert datasources == conf.GRAFANA_DATASOURCES.parent
    assert providers == conf.GRAFANA_DASHBOARD_PROVIDER.parent
    (provider,) = yaml.safe_load(conf.GRAFANA_DASHBOARD_PROVIDER.read_text())["providers"]
    dashboards, _ = found[provider["options"]["path"]]
    assert dashboards == conf.GRAFANA_DASHBOARD.parent
    home = service(stack, "grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{conf.GRAFANA_DASHBOARD.name}"
    (datasource,) = yaml.safe_load(conf.GRAFANA_DATASOURCES.read_text())["datasources"]
    assert datasource["url"] == f"http://prometheus:{PROMETHEUS_PORT}"
    assert service(stack, "grafana")["depends_on"] == {
        "prometheus": {"condition": "service_healthy"}
    }


def test_every_mounted_file_exists(stack: dict[str, Any]) -> None:
    for name in SERVICES:
        for source, _ in mounts(stack, name).values():
            assert source.exists(), source
            assert conf.CONF in source.parents, "the shared files, never copies"


def test_grafana_s_admin_password_is_a_secret_file(stack: dict[str, Any]) -> None:
    grafana = service(stack, "grafana")
    assert grafana["secrets"] == [GRAFANA_SECRET]
    env = grafana["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == f"/run/secrets/{GRAFANA_SECRET}"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env, "never in the configuration itself"
    password = (ROOT / stack["secrets"][GRAFANA_SECRET]["file"]).read_text()
    assert password
    assert password == password.strip(), "Grafana would take a newline as part of it"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer", "anonymous users only look"
    assert password not in MONITORING_FILE.read_text()
