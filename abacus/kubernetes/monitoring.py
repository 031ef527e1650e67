"""Monitoring on Kubernetes, for clusters that run the Prometheus Operator (kube-prometheus-stack):
a ServiceMonitor for the nodes, the alerting rules as a PrometheusRule, and the Grafana dashboard
as a ConfigMap for Grafana's dashboard sidecar. Rendered into kubernetes/monitoring.yaml, apart
from abacus.yaml, because these kinds exist only where the Operator's definitions are installed.

The rules and the dashboard are abacus/conf/'s files as they are, the same ones compose's
Prometheus and Grafana load: one source for every stack.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from abacus import conf
from abacus.kubernetes import nodes
from abacus.kubernetes.objects import Document, Manifest, metadata, selector

COMPONENT = "monitoring"
NAME = "abacus"
# The job every stack's scrape configuration names: the rules and the dashboard select it.
JOB = "abacus-node"
SCRAPE_INTERVAL = "15s"
# kube-prometheus-stack's Grafana sidecar loads every ConfigMap with this label (its default).
DASHBOARD_LABEL = "grafana_dashboard"
DASHBOARD_CONFIG_MAP = "abacus-grafana-dashboard"


def rule_groups() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(conf.PROMETHEUS_RULES.read_text(encoding="utf-8"))
    groups: list[dict[str, Any]] = loaded["groups"]
    return groups


def service_monitor() -> Document:
    body: Manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(NAME, COMPONENT),
        "spec": {
            # The nodes' headless Service: its endpoints are every ready pod, each scraped alone
            # (a node's /metrics is its own).
            "selector": {"matchLabels": selector(nodes.COMPONENT)},
            "endpoints": [
                {
                    "port": nodes.PORT_NAME,
                    "path": nodes.METRICS_PATH,
                    "interval": SCRAPE_INTERVAL,
                    "relabelings": [
                        # The Operator names the job after the Service; the rules expect JOB.
                        {"action": "replace", "targetLabel": "job", "replacement": JOB},
                        # A node's id is its pod's name: the same in the dashboard and the logs.
                        {
                            "action": "replace",
                            "sourceLabels": ["__meta_kubernetes_pod_name"],
                            "targetLabel": "instance",
                        },
                    ],
                }
            ],
        },
    }
    return Document(
        "Prometheus Operator: scrape every node pod behind the headless Service, as job\n"
        f"{JOB}. Your Prometheus may select ServiceMonitors by a label (e.g. kube-prometheus-\n"
        "stack's `release`): add it here.",
        body,
    )


def prometheus_rule() -> Document:
    body: Manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(NAME, COMPONENT),
        "spec": {"groups": rule_groups()},
    }
    return Document(
        "The alerting rules, from abacus/conf/prometheus/abacus-rules.yml as they are\n"
        "(docs/operators.md says what each means). Your Prometheus may select rules by a label:\n"
        "add it here.",
        body,
    )


def dashboard_config_map() -> Document:
    dashboard = conf.GRAFANA_DASHBOARD.read_text(encoding="utf-8")
    json.loads(dashboard)  # a broken file must fail the rendering, not Grafana's sidecar
    body: Manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": DASHBOARD_CONFIG_MAP,
            "labels": {**metadata(NAME, COMPONENT)["labels"], DASHBOARD_LABEL: "1"},
        },
        "data": {conf.GRAFANA_DASHBOARD.name: dashboard},
    }
    return Document(
        "The Grafana dashboard, from abacus/conf/grafana/dashboards/abacus.json as it is, for\n"
        "Grafana's dashboard sidecar (it loads ConfigMaps labelled grafana_dashboard).",
        body,
    )


def documents() -> list[Document]:
    return [service_monitor(), prometheus_rule(), dashboard_config_map()]
