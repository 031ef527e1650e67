"""The nodes: a Deployment whose replica count the HorizontalPodAutoscaler owns, the headless
Service nginx resolves to one address per ready pod, and a PodDisruptionBudget."""

from __future__ import annotations

from typing import Any

from abacus.kubernetes import objects, redis, secrets
from abacus.kubernetes.objects import (
    SECRETS_DIR,
    STOP_MARGIN_S,
    Document,
    Manifest,
    container_security,
    http_probe,
    memory_volume,
    metadata,
    pod_defaults,
    pod_security,
    resources,
    selector,
    spread,
)
from abacus.node.node_limits import GRACEFUL_TIMEOUT_S

COMPONENT = "node"
NAME = "abacus-node"
# Headless: its DNS name has one A record per ready pod, which nginx's `resolve` turns into one
# upstream peer each.
SERVICE = "abacus-nodes"
PORT = 8000
PORT_NAME = "http"
DEFAULT_IMAGE = "abacus-node:local"
# The image's user (Dockerfile USER 10001:10001).
USER = 10001
# The design's three nodes are the floor; the add rate is bounded by the one hot key in Redis
# (docs/operations.md), so nodes beyond a handful add reads and headroom, not adds.
MIN_REPLICAS = 3
MAX_REPLICAS = 10
CPU_TARGET_PERCENT = 70
WORKERS = 2
# On deletion the pod leaves the Service's endpoints at once, but DNS answers and nginx's own
# re-resolution (every 5 s) lag behind: until they catch up nginx may still send it requests,
# which it keeps answering before its SIGTERM. (A request that arrives later is refused and passed
# on by nginx to another node: slower, never an error.)
PRE_STOP_S = 15
# preStop, then Gunicorn's graceful stop (it answers what it holds and commits its adds), then
# the margin: the kubelet's SIGKILL never cuts a graceful stop short.
TERMINATION_GRACE_S = PRE_STOP_S + GRACEFUL_TIMEOUT_S + STOP_MARGIN_S
LIVEZ = "/livez"
METRICS_PATH = "/metrics"
# The common convention of annotation-based scraping (a Prometheus job that keeps pods annotated
# prometheus.io/scrape: "true"): each node serves its own /metrics, so pods are the targets, not
# the Service. With the Prometheus Operator, kubernetes/monitoring.yaml's ServiceMonitor does it.
SCRAPE_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(PORT),
    "prometheus.io/path": METRICS_PATH,
}


def environment() -> list[dict[str, Any]]:
    """The node settings (docs/configuration.md); NODE_ID is left to its default, the host name,
    which is the pod's name."""
    return [
        {"name": "REDIS_URL", "value": redis.URL},
        {"name": "REDIS_PASSWORD_FILE", "value": secrets.REDIS_PASSWORD.path},
        {"name": "ABACUS_BALANCER_SECRET_FILE", "value": secrets.BALANCER_SECRET.path},
        {
            "name": "ABACUS_ADMIN_TOKEN",
            "valueFrom": {
                "secretKeyRef": {
                    "name": secrets.ADMIN_TOKEN.secret,
                    "key": secrets.ADMIN_TOKEN.key,
                    "optional": True,
                }
            },
        },
        # The names clients use for the service, besides IP addresses (which probes use).
        {"name": "ABACUS_SERVER_NAMES", "value": "localhost"},
        {"name": "WEB_CONCURRENCY", "value": str(WORKERS)},
        # On the pod's tmpfs below, as in compose.
        {"name": "PROMETHEUS_MULTIPROC_DIR", "value": "/tmp/metrics"},  # noqa: S108
    ]


def container(image: str) -> dict[str, Any]:
    return {
        "name": COMPONENT,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
        "env": environment(),
        # The process alone, never Redis: a Redis outage must not restart every node.
        "livenessProbe": http_probe(LIVEZ, PORT_NAME, period_s=10, failures=3),
        # The same, on purpose: a node that cannot reach Redis still answers JSON 503s at once
        # ("unavailable": nothing changed), which beats nginx's 502s, and an outage of Redis
        # would otherwise take every node out of the Service together and leave nginx with none.
        "readinessProbe": http_probe(LIVEZ, PORT_NAME, period_s=5, failures=2),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_S)]}}},
        "resources": resources("500m", "256Mi", str(WORKERS), "512Mi"),
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - a tmpfs, as in compose
        ],
    }


def deployment(image: str) -> Document:
    # No `replicas`: the HorizontalPodAutoscaler owns the count, and an apply must not reset it.
    body: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(NAME, COMPONENT),
        "spec": {
            "selector": {"matchLabels": selector(COMPONENT)},
            # A new pod is ready before an old one goes: the node count never dips in a rollout.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": metadata(NAME, COMPONENT)["labels"],
                    "annotations": dict(SCRAPE_ANNOTATIONS),
                },
                "spec": {
                    **pod_defaults(),
                    "securityContext": pod_security(USER, USER),
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
                    "topologySpreadConstraints": spread(COMPONENT),
                    "containers": [container(image)],
                    "volumes": [
                        secrets.volume("secrets", secrets.REDIS_PASSWORD, secrets.BALANCER_SECRET),
                        memory_volume("tmp", "64Mi"),
                    ],
                },
            },
        },
    }
    return Document("The nodes: stateless, any number; the autoscaler below sets how many.", body)


def service() -> Document:
    body: Manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(SERVICE, COMPONENT),
        "spec": {
            "clusterIP": "None",
            "selector": selector(COMPONENT),
            "ports": [
                {"name": PORT_NAME, "port": PORT, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }
    return Document(
        "Headless: nginx resolves this name to every ready node, one upstream peer each.", body
    )


def autoscaler() -> Document:
    body: Manifest = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(NAME, COMPONENT),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
            "minReplicas": MIN_REPLICAS,
            "maxReplicas": MAX_REPLICAS,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": CPU_TARGET_PERCENT,
                        },
                    },
                }
            ],
        },
    }
    return Document(
        "The node count, on CPU; it needs the cluster's metrics (metrics-server), and keeps at\n"
        "least minReplicas without them.",
        body,
    )


def disruption_budget() -> Document:
    return objects.disruption_budget(
        NAME, COMPONENT, "Drains and upgrades take one node at a time."
    )


def documents(image: str) -> list[Document]:
    return [deployment(image), service(), autoscaler(), disruption_budget()]
