"""The configuration files every stack shares, in one place: the local stack reads them from here
(they ship in the package), compose mounts them, and the image and Kubernetes use the same ones.
"""

from __future__ import annotations

from pathlib import Path

CONF = Path(__file__).resolve().parent
NGINX_MAIN_CONF = CONF / "nginx" / "nginx.conf"
NGINX_TEMPLATE = CONF / "nginx" / "templates" / "abacus.conf.template"
# Sourced by the official nginx image's entrypoint before it renders the template (compose and
# Kubernetes): the `resolver` for the nodes' names, and the balancer's secret.
NGINX_RESOLVER_SCRIPT = CONF / "nginx" / "abacus-resolver.envsh"
NGINX_SECRET_SCRIPT = CONF / "nginx" / "abacus-balancer-secret.envsh"
REDIS_CONF = CONF / "redis.conf"
# Starts Redis with REDIS_CONF and the password from its secret, and pings it (compose and
# Kubernetes); the local stack starts its Redis without a password and without this script.
REDIS_CONTAINER_SCRIPT = CONF / "redis-container.sh"
# The Sentinels' shared lines (the replicated mode); each stack writes the rest of their files.
SENTINEL_CONF = CONF / "sentinel.conf"
# Gunicorn's configuration is a module of the node package, loaded as `-c python:<module>`.
GUNICORN_CONFIG = "python:abacus.node.gunicorn_conf"
# Monitoring, both stacks: compose.monitoring.yaml mounts these, and kubernetes/monitoring.yaml
# carries the rules and the dashboard as they are.
PROMETHEUS_DIR = CONF / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
PROMETHEUS_RULES = PROMETHEUS_DIR / "abacus-rules.yml"
GRAFANA_DIR = CONF / "grafana"
GRAFANA_DASHBOARD = GRAFANA_DIR / "dashboards" / "abacus.json"
GRAFANA_DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_DASHBOARD_PROVIDER = GRAFANA_DIR / "provisioning" / "dashboards" / "abacus.yml"
