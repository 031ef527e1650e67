"""What every Abacus object shares: labels, the hardening of pods and containers, resources, and
the hash that rolls pods when their configuration changes."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]

PART_OF = "abacus"
# Set on a pod template to the hash of the ConfigMaps it mounts: a change of the shared files
# changes the template, so `kubectl apply` rolls the pods, which read their files only at start.
CONFIG_HASH_ANNOTATION = "abacus/config-sha256"
# Where pods find their secrets, as in compose: /run/secrets/<name>.
SECRETS_DIR = "/run/secrets"
# Room after a container's own longest stop, before the kubelet's SIGKILL.
STOP_MARGIN_S = 10


class FileMode(int):
    """A file's permission bits: written in octal in the YAML (0444), as people read them."""


@dataclass(frozen=True)
class Document:
    """One object of the rendered files, with the comment written above it."""

    comment: str
    body: Manifest


def labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "abacus",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
    }


def selector(component: str) -> dict[str, str]:
    """What a workload, its Service, its budget and its policies select: the two labels that tell
    one component from the others (part-of is every object's)."""
    found = labels(component)
    return {key: found[key] for key in ("app.kubernetes.io/name", "app.kubernetes.io/component")}


def metadata(name: str, component: str) -> dict[str, Any]:
    return {"name": name, "labels": labels(component)}


def config_hash(*data: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for mapping in data:
        for key in sorted(mapping):
            digest.update(f"{key}\0{mapping[key]}\0".encode())
    return digest.hexdigest()


def pod_security(user: int, group: int) -> dict[str, Any]:
    """A pod of one unprivileged user, with the runtime's default seccomp profile. Its volumes
    (the secrets, Redis's data) are its group's: the secrets' files are readable by that group
    only, and the kubelet changes a volume's group only when its root is not already the group's.
    """
    return {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": group,
        "fsGroup": group,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    """As in compose: read-only root, no capabilities, no way to gain privileges."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_defaults() -> dict[str, Any]:
    """No API token (nothing here talks to Kubernetes) and no Service links: Kubernetes would set
    <SERVICE>_PORT variables for every Service of the namespace, and the nginx image substitutes
    every set variable into its template."""
    return {"automountServiceAccountToken": False, "enableServiceLinks": False}


def resources(
    cpu_request: str, memory_request: str, cpu_limit: str, memory_limit: str
) -> dict[str, Any]:
    return {
        "requests": {"cpu": cpu_request, "memory": memory_request},
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
    }


def memory_volume(name: str, size: str) -> dict[str, Any]:
    """A tmpfs, as compose's: counted against the container's memory limit."""
    return {"name": name, "emptyDir": {"medium": "Memory", "sizeLimit": size}}


def spread(component: str) -> list[dict[str, Any]]:
    """Replicas on different machines where there are several: one machine lost costs one."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector(component)},
        }
    ]


def http_probe(path: str, port: str, period_s: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period_s,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def cluster_service(name: str, component: str, port_name: str, port: int, why: str) -> Document:
    """A Service with a cluster address in front of one workload's named port."""
    body: Manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, component),
        "spec": {
            "selector": selector(component),
            "ports": [
                {"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}
            ],
        },
    }
    return Document(why, body)


def disruption_budget(name: str, component: str, why: str) -> Document:
    """Voluntary disruptions (drains, upgrades) take one pod of the workload at a time."""
    body: Manifest = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(name, component),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(component)}},
    }
    return Document(why, body)
