"""The operator's kit: the Prometheus configuration, the alerting rules and the Grafana dashboard
(abacus/conf/prometheus/, abacus/conf/grafana/), shared by compose and Kubernetes.

promtool checks the configuration and the rules and runs the rules' unit tests
(tests/prometheus/); every metric the rules and the dashboard name is one a node exports, by its
registry and by what a real Gunicorn node serves; every alert says what to do and has its section
in docs/operators.md; the Kubernetes rendering carries the same files.

promtool is required (scripts/install_system_deps.sh installs Debian's `prometheus`). Only with
ABACUS_ALLOW_MISSING_PROMTOOL=1 do its tests skip instead of failing where it is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from abacus import conf
from abacus.cli import render_kubernetes
from abacus.kubernetes import monitoring, nodes
from abacus.node import metrics
from tests.single_node import Node, single_node
from tests.test_docs import anchors

ROOT = Path(__file__).resolve().parents[1]
RULES_TESTS = ROOT / "tests" / "prometheus" / "abacus-rules.test.yml"
OPERATORS_DOC = ROOT / "docs" / "operators.md"
MONITORING_MANIFESTS = ROOT / "kubernetes" / render_kubernetes.MONITORING
JOB = monitoring.JOB
# Series Prometheus makes itself for every target, not the nodes.
PROMETHEUS_MADE = frozenset({"up"})
SEVERITIES = {"warning", "critical"}
ANNOTATIONS = {"summary", "description", "action", "runbook"}
ALLOW_MISSING_PROMTOOL = "ABACUS_ALLOW_MISSING_PROMTOOL"


# --- promtool ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get(ALLOW_MISSING_PROMTOOL) == "1":
            pytest.skip(f"promtool is missing and {ALLOW_MISSING_PROMTOOL}=1")
        pytest.fail(
            "promtool is missing: run scripts/install_system_deps.sh (Debian's `prometheus`), or "
            f"set {ALLOW_MISSING_PROMTOOL}=1 to skip these tests",
            pytrace=False,
        )
    return found


def run_promtool(promtool: str, *args: str) -> None:
    result = subprocess.run(
        [promtool, *args], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"


def test_promtool_checks_the_prometheus_configuration(promtool: str) -> None:
    # It reads the rule files the configuration names too: the relative name must resolve.
    run_promtool(promtool, "check", "config", str(conf.PROMETHEUS_CONFIG))


def test_promtool_checks_the_rules(promtool: str) -> None:
    run_promtool(promtool, "check", "rules", str(conf.PROMETHEUS_RULES))


def test_promtool_runs_the_rules_unit_tests(promtool: str) -> None:
    run_promtool(promtool, "test", "rules", str(RULES_TESTS))


# --- The rules -----------------------------------------------------------------------------------


@cache
def rule_groups() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(conf.PROMETHEUS_RULES.read_text())
    groups: list[dict[str, Any]] = loaded["groups"]
    return groups


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def rule_expressions() -> list[str]:
    return [rule["expr"] for group in rule_groups() for rule in group["rules"]]


def test_the_alerts_the_brief_asks_for_are_there() -> None:
    names = {alert["alert"] for alert in alerts()}
    assert names >= {
        "AbacusNoNodes",
        "AbacusNodeDown",
        "AbacusFewerNodesThanExpected",
        "AbacusRedisUnreachable",
        "AbacusRedisMemoryNearLimit",
        "AbacusRedisMemoryFull",
        "AbacusAddErrorRate",
        "AbacusOutcomeUnknown",
        "AbacusConflictRetriesHigh",
        "AbacusCommitBatchesCollapsed",
    }
    assert len(names) == len(alerts()), "alert names are unique"


@pytest.mark.parametrize("alert", alerts(), ids=lambda alert: alert["alert"])
def test_every_alert_says_why_and_what_to_do(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in SEVERITIES
    assert set(alert["annotations"]) == ANNOTATIONS
    assert all(text.strip() for text in alert["annotations"].values())
    page, _, anchor = alert["annotations"]["runbook"].partition("#")
    assert ROOT / page == OPERATORS_DOC
    assert anchor == alert["alert"].lower()
    assert anchor in anchors(OPERATORS_DOC), f"docs/operators.md has no section {anchor}"
    assert "for" in alert, "no alert fires on a single evaluation"
    assert f'job="{JOB}"' in alert["expr"], "every stack's scrape job, by name"


def test_every_alert_fires_in_a_unit_test() -> None:
    tests = yaml.safe_load(RULES_TESTS.read_text())
    assert tests["rule_files"] == [os.path.relpath(conf.PROMETHEUS_RULES, RULES_TESTS.parent)]
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    quiet = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if not case["exp_alerts"]
    }
    names = {alert["alert"] for alert in alerts()}
    assert fired == names, "each alert fires in a test"
    # Near misses: the alerts whose thresholds are a judgement are held quiet below them too.
    assert quiet >= names - {"AbacusRedisMemoryFull", "AbacusUntrustedRetryKeys"}


def test_the_prometheus_configuration_scrapes_every_node_by_dns() -> None:
    config = yaml.safe_load(conf.PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == [conf.PROMETHEUS_RULES.name]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == JOB]
    assert job["metrics_path"] == nodes.METRICS_PATH
    # Docker's DNS: one A record per replica of the one node service, whatever their number.
    assert job["dns_sd_configs"] == [
        {"names": ["node"], "type": "A", "port": nodes.PORT, "refresh_interval": "10s"}
    ]


# --- Metric names --------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset({"and", "or", "unless", "offset", "bool", "inf", "nan", "atan2"})
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", re.S)


def metric_names(expression: str) -> set[str]:
    """The series names a PromQL expression selects: what is left once strings, label matchers,
    ranges, groupings, Grafana's variables, functions, keywords and numbers are taken out."""
    text = _STRING.sub('""', expression)
    text = _GRAFANA_VARIABLE.sub("", text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match[0] in _KEYWORDS:
            continue
        names.add(match[0])
    return names


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ('up{job="abacus-node"} == 0', {"up"}),
        ('absent(up{job="x", instance=~"a|b"} == 1)', {"up"}),
        (
            'sum by (instance, le) (rate(h_bucket{route="/abacus/number"}[$__rate_interval]))',
            {"h_bucket"},
        ),
        ("sum(rate(a_total[5m])) by (job) / on (job) group_left (x) b offset 1h", {"a_total", "b"}),
        ('histogram_quantile(0.99, sum(rate(x_bucket{l="sum(y)"}[1m])) without (z))', {"x_bucket"}),
        ("(a:recorded > 1e3) and bool c < 0.5", {"a:recorded", "c"}),
        ('rate(x[5m]) > 0 unless max(y{instance=~"$instance"})', {"x", "y"}),
    ],
)
def test_metric_names_are_read_from_promql(expression: str, names: set[str]) -> None:
    assert metric_names(expression) == names


@cache
def dashboard() -> dict[str, Any]:
    loaded = json.loads(conf.GRAFANA_DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def dashboard_expressions() -> list[str]:
    found = [target["expr"] for panel in panels() for target in panel["targets"]]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            match = _LABEL_VALUES.match(query)
            found.append(match[1] if match else query)
    return found


def used_names() -> set[str]:
    return {
        name
        for expr in [*rule_expressions(), *dashboard_expressions()]
        for name in metric_names(expr)
    }


def sample_names(metric: MetricWrapperBase) -> set[str]:
    """The names of a metric's series as Prometheus stores them (what PromQL selects)."""
    names: set[str] = set()
    for family in metric.describe():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def registered_names() -> set[str]:
    """Every series name abacus/node/metrics.py declares."""
    return {
        name
        for value in vars(metrics).values()
        if isinstance(value, MetricWrapperBase)
        for name in sample_names(value)
    }


def test_the_rules_and_the_dashboard_name_only_metrics_the_nodes_declare() -> None:
    used = used_names()
    assert used >= {
        "up",
        "abacus_add_outcomes_total",
        "abacus_http_request_duration_seconds_bucket",
    }
    unknown = used - registered_names() - PROMETHEUS_MADE
    assert unknown == set(), f"not a metric of abacus/node/metrics.py: {sorted(unknown)}"


def served_names(node: Node) -> set[str]:
    reply = requests.get(
        f"http://127.0.0.1:{node.port}/metrics", headers={"Host": "localhost"}, timeout=10
    )
    reply.raise_for_status()
    return {
        sample.name
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def post(node: Node, number: int, key: str | None = None) -> int:
    headers = {"Host": "localhost", "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    reply = requests.post(
        f"http://127.0.0.1:{node.port}/abacus/number",
        json={"number": number},
        headers=headers,
        timeout=30,
    )
    return reply.status_code


def get(node: Node, path: str) -> int:
    reply = requests.get(
        f"http://127.0.0.1:{node.port}{path}", headers={"Host": "localhost"}, timeout=10
    )
    return reply.status_code


@pytest.fixture
def served(standalone_redis: tuple[int, Any], tmp_path: Path) -> set[str]:
    """The series names real Gunicorn nodes serve at /metrics: one with Redis after adds, a
    replay and a key the quota refuses; one without Redis (its errors, its refusals). A labelled
    metric appears only once something was counted under it, so both are needed."""
    redis_port, _ = standalone_redis
    (tmp_path / "up").mkdir()
    (tmp_path / "down").mkdir()
    with single_node(
        tmp_path / "up",
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        ABACUS_KEYS_PER_CLIENT="1",
    ) as node:
        assert [post(node, 1), post(node, 2)] == [200, 200]
        assert [post(node, 3, "key-1"), post(node, 3, "key-1")] == [200, 200]
        assert post(node, 4, "key-2") == 429, "past the quota of one new key"
        assert [get(node, "/abacus/sum"), get(node, "/health")] == [200, 200]
        with_redis = served_names(node)
    with single_node(tmp_path / "down") as node:
        assert post(node, 1) == 503
        assert get(node, "/health") == 503
        without_redis = served_names(node)
    return with_redis | without_redis


@pytest.mark.stack
def test_the_rules_and_the_dashboard_name_only_metrics_a_real_node_serves(
    served: set[str],
) -> None:
    unknown = used_names() - served - PROMETHEUS_MADE
    assert unknown == set(), f"no node served: {sorted(unknown)}"
    # And the names are read from the registry the way a node serves them.
    assert served <= registered_names()


# --- The dashboard -------------------------------------------------------------------------------


def test_the_dashboard_shows_what_an_operator_needs_per_node() -> None:
    board = dashboard()
    assert board["uid"] == "abacus"
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["includeAll"] is True
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    expressions = " ".join(dashboard_expressions())
    for needed in (
        "abacus_http_requests_total",  # throughput, and answers by status
        "abacus_http_request_duration_seconds_bucket",  # latency
        "abacus_add_outcomes_total",  # outcomes by error code
        "abacus_commit_conflicts_total",
        "abacus_commit_retries_total",
        "abacus_commit_batch_size_bucket",
        "abacus_redis_errors_total",
        "abacus_redis_memory_used_ratio",
    ):
        assert needed in expressions, needed
    per_node = [panel for panel in panels() if panel["type"] == "timeseries"]
    assert sum("instance" in panel["targets"][0]["legendFormat"] for panel in per_node) >= 10


@pytest.mark.parametrize("panel", panels(), ids=lambda panel: panel["title"])
def test_every_panel_asks_the_chosen_data_source_for_the_chosen_nodes(
    panel: dict[str, Any],
) -> None:
    assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert panel["description"]
    for target in panel["targets"]:
        assert target["datasource"] == panel["datasource"]
        if 'job="abacus-node"' in target["expr"] and "up{" not in target["expr"]:
            per_node = 'instance=~"$instance"' in target["expr"]
            assert per_node or target["expr"].startswith("max("), target["expr"]


def test_grafana_provisions_the_data_source_and_the_dashboard() -> None:
    datasources = yaml.safe_load(conf.GRAFANA_DATASOURCES.read_text())["datasources"]
    assert [(d["type"], d["url"], d["isDefault"]) for d in datasources] == [
        ("prometheus", "http://prometheus:9090", True)
    ]
    (provider,) = yaml.safe_load(conf.GRAFANA_DASHBOARD_PROVIDER.read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False, "the file is the one source"


# --- Kubernetes ----------------------------------------------------------------------------------


@cache
def monitoring_objects() -> dict[str, dict[str, Any]]:
    loaded = [o for o in yaml.safe_load_all(MONITORING_MANIFESTS.read_text()) if o]
    return {o["kind"]: o for o in loaded}


def test_the_node_pods_carry_the_scrape_annotations() -> None:
    (deployment,) = [
        o
        for o in yaml.safe_load_all((ROOT / "kubernetes" / "abacus.yaml").read_text())
        if o and o["kind"] == "Deployment" and o["metadata"]["name"] == nodes.NAME
    ]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(nodes.PORT),
        "prometheus.io/path": nodes.METRICS_PATH,
    }


def test_the_kubernetes_monitoring_carries_the_shared_files_as_they_are() -> None:
    objects = monitoring_objects()
    assert set(objects) == {"ServiceMonitor", "PrometheusRule", "ConfigMap"}
    assert objects["PrometheusRule"]["spec"]["groups"] == rule_groups()
    (text,) = objects["ConfigMap"]["data"].values()
    assert text == conf.GRAFANA_DASHBOARD.read_text()
    assert objects["ConfigMap"]["metadata"]["labels"][monitoring.DASHBOARD_LABEL] == "1"


def test_the_service_monitor_scrapes_the_node_pods_as_the_rules_job() -> None:
    monitor = monitoring_objects()["ServiceMonitor"]
    (service,) = [
        o
        for o in yaml.safe_load_all((ROOT / "kubernetes" / "abacus.yaml").read_text())
        if o and o["kind"] == "Service" and o["metadata"]["name"] == nodes.SERVICE
    ]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == nodes.METRICS_PATH
    assert {"action": "replace", "targetLabel": "job", "replacement": JOB} in endpoint[
        "relabelings"
    ]
