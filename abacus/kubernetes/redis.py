"""Redis: a StatefulSet of one, its append-only file on a PersistentVolumeClaim, started by the
same script and redis.conf as in compose; its Service, and who may reach it."""

from __future__ import annotations

from typing import Any

from abacus import conf
from abacus.kubernetes import objects, secrets
from abacus.kubernetes.objects import (
    CONFIG_HASH_ANNOTATION,
    SECRETS_DIR,
    Document,
    FileMode,
    Manifest,
    config_hash,
    container_security,
    metadata,
    pod_defaults,
    pod_security,
    resources,
    selector,
)

COMPONENT = "redis"
NAME = "abacus-redis"
PORT = 6379
PORT_NAME = "redis"
URL = f"redis://{NAME}:{PORT}/0"
IMAGE = "redis:7.4.7-alpine"
# The image's unprivileged user and group.
USER = 999
GROUP = 1000
# As compose mounts them: the start script finds redis.conf beside itself.
CONF_DIR = "/usr/local/etc/redis"
SCRIPT = f"{CONF_DIR}/{conf.REDIS_CONTAINER_SCRIPT.name}"
# Above redis.conf's maxmemory (512mb), which bounds the data set alone: client buffers and the
# copy-on-write pages of an append-only file rewrite's fork come on top, and a container killed at
# its limit loses nothing acknowledged but is down until it has reloaded its file.
MEMORY_LIMIT = "1Gi"
# The append-only file and its rewrite's new copy, with room: a few times maxmemory.
STORAGE = "4Gi"


def config_map_data() -> dict[str, str]:
    return {
        conf.REDIS_CONF.name: conf.REDIS_CONF.read_text(),
        conf.REDIS_CONTAINER_SCRIPT.name: conf.REDIS_CONTAINER_SCRIPT.read_text(),
    }


def config_map() -> Document:
    body: Manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(NAME, COMPONENT),
        "data": config_map_data(),
    }
    return Document("abacus/conf/redis.conf and redis-container.sh, as they are.", body)


def container() -> dict[str, Any]:
    return {
        "name": COMPONENT,
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", SCRIPT, "start"],
        "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
        # Ready once an authenticated PING gets PONG, that is once the append-only file is loaded:
        # until then the Service has no endpoint, and the nodes answer 503 at once.
        "readinessProbe": {
            "exec": {"command": ["sh", SCRIPT, "ping"]},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 2,
        },
        # Restarting Redis costs a reload of its file: only when it no longer accepts
        # connections at all (it does while it loads, or refuses writes).
        "livenessProbe": {
            "tcpSocket": {"port": PORT_NAME},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 6,
        },
        "resources": resources("250m", "640Mi", "2", MEMORY_LIMIT),
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONF_DIR, "readOnly": True},
            {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
            {"name": "data", "mountPath": "/data"},
        ],
    }


def stateful_set() -> Document:
    body: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(NAME, COMPONENT),
        "spec": {
            # The Service below, a ClusterIP one: one pod needs no DNS name of its own, and the
            # Service's stable address hides its restarts from the nodes.
            "serviceName": NAME,
            # One Redis: the one sum lives in one place (docs/design.md, the fault model).
            "replicas": 1,
            "selector": {"matchLabels": selector(COMPONENT)},
            "template": {
                "metadata": {
                    "labels": metadata(NAME, COMPONENT)["labels"],
                    "annotations": {CONFIG_HASH_ANNOTATION: config_hash(config_map_data())},
                },
                "spec": {
                    **pod_defaults(),
                    "securityContext": pod_security(USER, GROUP),
                    # Redis stops on SIGTERM after an fsync of its file; it needs seconds.
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container()],
                    "volumes": [
                        {
                            "name": "config",
                            "configMap": {"name": NAME, "defaultMode": FileMode(0o444)},
                        },
                        secrets.volume("secrets", secrets.REDIS_PASSWORD),
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data", "labels": metadata(NAME, COMPONENT)["labels"]},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": STORAGE}},
                    },
                }
            ],
        },
    }
    return Document(
        "Redis: the one sum, its append-only file on the claim (kept when the pod goes).", body
    )


def service() -> Document:
    return objects.cluster_service(NAME, COMPONENT, PORT_NAME, PORT, "The nodes' REDIS_URL.")


def network_policy(client_selector: dict[str, str]) -> Document:
    body: Manifest = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(NAME, COMPONENT),
        "spec": {
            "podSelector": {"matchLabels": selector(COMPONENT)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": client_selector}}],
                    "ports": [{"port": PORT_NAME, "protocol": "TCP"}],
                }
            ],
        },
    }
    return Document(
        "Only the nodes reach Redis, like compose's internal network (where the cluster's\n"
        "network plugin enforces policies).",
        body,
    )


def documents(client_selector: dict[str, str]) -> list[Document]:
    return [config_map(), service(), stateful_set(), network_policy(client_selector)]
