"""The balancer: nginx's official image with the shared main config, template and entrypoint
scripts of abacus/conf/nginx, as a Deployment behind a Service, and its PodDisruptionBudget."""

from __future__ import annotations

from typing import Any

from abacus import conf
from abacus.kubernetes import nodes, objects, secrets
from abacus.kubernetes.objects import (
    CONFIG_HASH_ANNOTATION,
    SECRETS_DIR,
    STOP_MARGIN_S,
    Document,
    FileMode,
    Manifest,
    config_hash,
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
from abacus.local_stack import nginx_config

COMPONENT = "balancer"
NAME = "abacus-balancer"
PORT = 8080
PORT_NAME = "http"
IMAGE = "nginx:1.28.1-alpine"
# The image's unprivileged user and group.
USER = 101
REPLICAS = 2
# The image's entrypoint sources /docker-entrypoint.d/*.envsh in `sort -V` order: ours come after
# its 15-local-resolvers.envsh and before its 20-envsubst-on-templates.sh, as in compose.
ENTRYPOINT_SCRIPTS = {
    "16-abacus-resolver.envsh": conf.NGINX_RESOLVER_SCRIPT,
    "18-abacus-balancer-secret.envsh": conf.NGINX_SECRET_SCRIPT,
}
# What nginx writes, as compose's tmpfs mounts: the rendered config, the temp files (the main
# config's relative paths under the prefix /etc/nginx) and the image's default cache path.
WRITABLE = {"conf-d": "/etc/nginx/conf.d", "tmp": "/etc/nginx/tmp", "cache": "/var/cache/nginx"}
# The pid file goes with the temp files: the image's default, /var/run, is on the read-only root.
PID_FILE = "/etc/nginx/tmp/nginx.pid"
# Long enough for the Service's endpoints to drop the pod before nginx stops taking requests.
PRE_STOP_S = 5
# Kubernetes stops a container with SIGTERM, which nginx takes as "stop now". The hook asks for
# the graceful stop instead (SIGQUIT, the image's stop signal: finish what it holds) and waits for
# it. nginx is the container's first process, so the hook is killed when nginx is done, and
# Kubernetes notes a FailedPreStopHook event: expected, and the SIGTERM then finds nothing to cut.
PRE_STOP = f"sleep {PRE_STOP_S}; kill -QUIT 1; while kill -0 1 2>/dev/null; do sleep 1; done"
# A request nginx holds may take its read timeout, then proxy_next_upstream_timeout of passing on.
TERMINATION_GRACE_S = int(
    PRE_STOP_S
    + nginx_config.PROXY_READ_TIMEOUT_S
    + nginx_config.NEXT_UPSTREAM_TIMEOUT_S
    + STOP_MARGIN_S
)
LIVEZ = "/livez"


def config_map_data() -> dict[str, str]:
    files = [conf.NGINX_MAIN_CONF, conf.NGINX_TEMPLATE, *ENTRYPOINT_SCRIPTS.values()]
    return {path.name: path.read_text() for path in files}


def config_map() -> Document:
    body: Manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(NAME, COMPONENT),
        "data": config_map_data(),
    }
    return Document(
        "abacus/conf/nginx: the main config, the template and the entrypoint scripts, as they are.",
        body,
    )


def upstream_servers(cluster_domain: str) -> str:
    """The nodes' headless Service by its fully qualified name: nginx's resolver ignores search
    domains. The namespace comes from the Downward API (POD_NAMESPACE, expanded by Kubernetes)."""
    host = f"{nodes.SERVICE}.$(POD_NAMESPACE).svc.{cluster_domain}:{nodes.PORT}"
    return nginx_config.upstream_servers([host], extra="resolve")


def environment(cluster_domain: str) -> list[dict[str, Any]]:
    """The template's variables (docs/configuration.md), but for ABACUS_RESOLVER and the secret,
    which the entrypoint scripts make."""
    return [
        {"name": "ABACUS_LISTEN", "value": str(PORT)},
        # Before the variable that names it: Kubernetes expands $(NAME) of earlier ones only.
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "ABACUS_UPSTREAM_SERVERS", "value": upstream_servers(cluster_domain)},
        # The image's 15-local-resolvers.envsh exports the pod's nameserver (the cluster DNS),
        # from which abacus-resolver.envsh makes the template's `resolver` directive.
        {"name": "NGINX_ENTRYPOINT_LOCAL_RESOLVERS", "value": "1"},
        {"name": "ABACUS_RATE_LIMIT", "value": str(nginx_config.DEFAULT_RATE_LIMIT)},
        {"name": "ABACUS_RATE_BURST", "value": str(nginx_config.DEFAULT_RATE_BURST)},
        {"name": "ABACUS_RATE_LIMIT_ENABLED", "value": "on"},
        {
            "name": "ABACUS_PROXY_READ_TIMEOUT",
            "value": f"{nginx_config.PROXY_READ_TIMEOUT_S:g}s",
        },
        {
            "name": "ABACUS_CLIENT_BODY_TIMEOUT",
            "value": f"{nginx_config.CLIENT_BODY_TIMEOUT_S:g}s",
        },
        {"name": "NGINX_ENTRYPOINT_QUIET_LOGS", "value": "1"},
    ]


def volume_mounts() -> list[dict[str, Any]]:
    files = {
        "/etc/nginx/nginx.conf": conf.NGINX_MAIN_CONF.name,
        f"/etc/nginx/templates/{conf.NGINX_TEMPLATE.name}": conf.NGINX_TEMPLATE.name,
        **{f"/docker-entrypoint.d/{name}": path.name for name, path in ENTRYPOINT_SCRIPTS.items()},
    }
    # Single files (subPath), beside the image's own: a whole directory would hide them.
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": target, "subPath": key, "readOnly": True}
        for target, key in files.items()
    ]
    mounts.append({"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True})
    mounts += [{"name": name, "mountPath": path} for name, path in WRITABLE.items()]
    return mounts


def container(cluster_domain: str) -> dict[str, Any]:
    return {
        "name": "nginx",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": ["nginx", "-g", f"daemon off; pid {PID_FILE};"],
        "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
        "env": environment(cluster_domain),
        # nginx's own /livez, never a node's: with every node or Redis down the balancer is still
        # alive (it answers JSON 502s and 503s), and restarting it would not help.
        "livenessProbe": http_probe(LIVEZ, PORT_NAME, period_s=10, failures=3),
        "readinessProbe": http_probe(LIVEZ, PORT_NAME, period_s=5, failures=2),
        "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", PRE_STOP]}}},
        # worker_processes auto: one worker per CPU of the machine, a few MB each.
        "resources": resources("100m", "64Mi", "1", "512Mi"),
        "securityContext": container_security(),
        "volumeMounts": volume_mounts(),
    }


def deployment(cluster_domain: str) -> Document:
    script_modes = {path.name: FileMode(0o555) for path in ENTRYPOINT_SCRIPTS.values()}
    body: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(NAME, COMPONENT),
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": selector(COMPONENT)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": metadata(NAME, COMPONENT)["labels"],
                    "annotations": {CONFIG_HASH_ANNOTATION: config_hash(config_map_data())},
                },
                "spec": {
                    **pod_defaults(),
                    "securityContext": pod_security(USER, USER),
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
                    "topologySpreadConstraints": spread(COMPONENT),
                    "containers": [container(cluster_domain)],
                    "volumes": [
                        {
                            "name": "config",
                            "configMap": {
                                "name": NAME,
                                "defaultMode": FileMode(0o444),
                                # The entrypoint skips a .envsh without its exec bit.
                                "items": [
                                    {"key": key, "path": key, **mode(script_modes, key)}
                                    for key in config_map_data()
                                ],
                            },
                        },
                        secrets.volume("secrets", secrets.BALANCER_SECRET),
                        memory_volume("conf-d", "1Mi"),
                        memory_volume("tmp", "64Mi"),
                        memory_volume("cache", "16Mi"),
                    ],
                },
            },
        },
    }
    return Document("The balancer: round robin over every ready node.", body)


def mode(modes: dict[str, FileMode], key: str) -> dict[str, FileMode]:
    return {"mode": modes[key]} if key in modes else {}


def service() -> Document:
    return objects.cluster_service(
        NAME,
        COMPONENT,
        PORT_NAME,
        PORT,
        "The service's URL inside the cluster; publish it with an Ingress, a LoadBalancer or\n"
        "`kubectl port-forward service/abacus-balancer 8080:8080`.",
    )


def disruption_budget() -> Document:
    return objects.disruption_budget(
        NAME, COMPONENT, "Drains and upgrades take one balancer at a time."
    )


def documents(cluster_domain: str) -> list[Document]:
    return [config_map(), service(), deployment(cluster_domain), disruption_budget()]
