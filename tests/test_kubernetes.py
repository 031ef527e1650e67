"""The Kubernetes manifests, proven without a cluster (the CI machine has none).

kubernetes/ is what scripts/render_kubernetes.py renders from the sources now; every object
validates against the Kubernetes API's schemas (kubernetes-validate, strict); the objects refer to
one another correctly (selectors and pod labels, Service and container ports, ConfigMaps and
Secrets and their keys, the autoscaler's and the budgets' targets); the ConfigMaps hold the shared
files as they are; probes, stops and hardening are as docs/operations.md says; and the nginx
configuration a balancer pod renders passes `nginx -t`. scripts/kind_smoke.sh runs them for real
where Docker and kind are.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from abacus import conf
from abacus.cli import render_kubernetes
from abacus.kubernetes import balancer, manifests, nodes, redis, secrets
from abacus.kubernetes.objects import CONFIG_HASH_ANNOTATION, config_hash
from abacus.local_stack import nginx_config
from abacus.node.node_limits import GRACEFUL_TIMEOUT_S
from abacus.node.routes import ROUTES
from abacus.node.settings import Settings
from tests import nginx_image
from tests.nginx_image import without_comments
from tests.stack_marker import require_stack_marker
from tests.test_compose import DOCUMENTED_NODE_SETTINGS, byte_size, raw_compose, redis_settings

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "kubernetes" / render_kubernetes.MANIFESTS
DEV_SECRETS = ROOT / "kubernetes" / render_kubernetes.DEV_SECRETS_FILE
KIND_SMOKE = ROOT / "scripts" / "kind_smoke.sh"
# The oldest release the manifests are held to, and the current one.
KUBERNETES_VERSIONS = ("1.30", "1.37")
WORKLOADS = {"Deployment", "StatefulSet"}
# What a balancer pod's Downward API gives it in the tests: any namespace will do.
NAMESPACE = "abacus"
CLUSTER_DNS = "10.96.0.10"

Manifest = dict[str, Any]


@cache
def committed(path: Path) -> tuple[Manifest, ...]:
    return tuple(document for document in yaml.safe_load_all(path.read_text()) if document)


def objects() -> tuple[Manifest, ...]:
    return committed(MANIFESTS)


def every_object() -> tuple[Manifest, ...]:
    """What a development cluster gets: the manifests and the development Secrets."""
    return (*committed(MANIFESTS), *committed(DEV_SECRETS))


def find(kind: str, name: str) -> Manifest:
    (found,) = [o for o in every_object() if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def object_id(manifest: Manifest) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def workloads() -> list[Manifest]:
    return [manifest for manifest in objects() if manifest["kind"] in WORKLOADS]


def pod_spec(workload: Manifest) -> Manifest:
    spec = workload["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


def pod_labels(workload: Manifest) -> dict[str, str]:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert isinstance(labels, dict)
    return labels


def only_container(workload: Manifest) -> Manifest:
    (container,) = pod_spec(workload)["containers"]
    assert isinstance(container, dict)
    return container


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def env_values(container: Manifest) -> dict[str, str]:
    return {name: entry["value"] for name, entry in env_of(container).items() if "value" in entry}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


# --- The files are the sources' rendering ---------------------------------------------------------


def test_the_committed_manifests_are_what_the_sources_render() -> None:
    files = render_kubernetes.rendered(manifests.Options())
    assert set(files) == {MANIFESTS.name, DEV_SECRETS.name, render_kubernetes.MONITORING}
    stale = [name for name, text in files.items() if (MANIFESTS.parent / name).read_text() != text]
    assert stale == [], "run `make manifests` and commit kubernetes/"
    assert render_kubernetes.main(["--check"]) == 0


def test_the_renderer_checks_and_writes_a_rendering_of_its_own(tmp_path: Path) -> None:
    assert render_kubernetes.main(["--check", "--out", str(tmp_path)]) == 1
    image = "registry.example/abacus-node:1.2.3"
    argv = ["--out", str(tmp_path), "--image", image, "--cluster-domain", "corp.internal"]
    assert render_kubernetes.main(argv) == 0
    assert render_kubernetes.main(["--check", *argv]) == 0
    written = list(yaml.safe_load_all((tmp_path / MANIFESTS.name).read_text()))
    deployment = next(o for o in written if o and object_id(o) == f"Deployment/{nodes.NAME}")
    assert only_container(deployment)["image"] == image
    assert "svc.corp.internal:" in (tmp_path / MANIFESTS.name).read_text()
    (tmp_path / MANIFESTS.name).write_text("# edited by hand\n")
    assert render_kubernetes.main(["--check", *argv]) == 1


def test_the_objects_are_the_ones_abacus_needs() -> None:
    assert sorted(object_id(manifest) for manifest in objects()) == sorted(
        [
            "ConfigMap/abacus-redis",
            "Service/abacus-redis",
            "StatefulSet/abacus-redis",
            "NetworkPolicy/abacus-redis",
            "Deployment/abacus-node",
            "Service/abacus-nodes",
            "HorizontalPodAutoscaler/abacus-node",
            "PodDisruptionBudget/abacus-node",
            "ConfigMap/abacus-balancer",
            "Service/abacus-balancer",
            "Deployment/abacus-balancer",
            "PodDisruptionBudget/abacus-balancer",
        ]
    )
    secret_ids = sorted(object_id(manifest) for manifest in committed(DEV_SECRETS))
    assert secret_ids == ["Secret/abacus-balancer-secret", "Secret/abacus-redis-password"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("manifest", every_object(), ids=object_id)
def test_every_object_validates_against_the_kubernetes_api(
    version: str, manifest: Manifest
) -> None:
    # Strict: a property the API does not know (a typo, a field at the wrong level) is an error,
    # and so is a kind or version it has no schema for (SchemaNotFoundError).
    assert kubernetes_validate.validate(manifest, version, strict=True) == version


def test_no_object_is_tied_to_a_namespace() -> None:
    # `kubectl apply --namespace NS` places them; the balancer asks the Downward API for NS.
    assert [object_id(o) for o in every_object() if "namespace" in o["metadata"]] == []


# --- Cross-references -----------------------------------------------------------------------------


@pytest.mark.parametrize("workload", workloads(), ids=object_id)
def test_a_workload_s_selector_matches_its_pods_and_no_other_workload_s(workload: Manifest) -> None:
    selector = workload["spec"]["selector"]["matchLabels"]
    assert selects(selector, pod_labels(workload))
    others = [o for o in workloads() if o is not workload and selects(selector, pod_labels(o))]
    assert others == []


def workload_selected_by(selector: dict[str, str]) -> Manifest:
    (selected,) = [o for o in workloads() if selects(selector, pod_labels(o))]
    return selected


def container_ports(workload: Manifest) -> dict[str | int, int]:
    """A pod's ports by name and by number."""
    found: dict[str | int, int] = {}
    for container in pod_spec(workload)["containers"]:
        for port in container.get("ports", []):
            found[port["containerPort"]] = port["containerPort"]
            if "name" in port:
                found[port["name"]] = port["containerPort"]
    return found


@pytest.mark.parametrize("service", [o for o in objects() if o["kind"] == "Service"], ids=object_id)
def test_every_service_selects_one_workload_and_targets_its_ports(service: Manifest) -> None:
    workload = workload_selected_by(service["spec"]["selector"])
    ports = container_ports(workload)
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports
        assert ports[port["targetPort"]] == port["port"], "the same number on both sides"


def test_the_redis_network_policy_admits_the_nodes_to_redis_s_port() -> None:
    policy = find("NetworkPolicy", redis.NAME)
    target = workload_selected_by(policy["spec"]["podSelector"]["matchLabels"])
    assert object_id(target) == f"StatefulSet/{redis.NAME}"
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    assert object_id(workload_selected_by(peer["podSelector"]["matchLabels"])) == (
        f"Deployment/{nodes.NAME}"
    )
    assert [port["port"] for port in rule["ports"]] == [redis.PORT_NAME]
    assert redis.PORT_NAME in container_ports(target)


def references(workload: Manifest) -> Iterator[tuple[str, str, str | None, bool]]:
    """Every (kind, name, key, optional) the pod refers to: volumes and environment."""
    spec = pod_spec(workload)
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            source = volume["configMap"]
            for item in source.get("items") or [{"key": None}]:
                yield "ConfigMap", source["name"], item["key"], source.get("optional", False)
        if "secret" in volume:
            source = volume["secret"]
            for item in source.get("items") or [{"key": None}]:
                yield "Secret", source["secretName"], item["key"], source.get("optional", False)
        for projected in volume.get("projected", {}).get("sources", []):
            for kind, field in (("ConfigMap", "configMap"), ("Secret", "secret")):
                if field in projected:
                    source = projected[field]
                    for item in source.get("items") or [{"key": None}]:
                        yield kind, source["name"], item["key"], source.get("optional", False)
    for container in spec["containers"]:
        for entry in container.get("env", []):
            value_from = entry.get("valueFrom", {})
            for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if field in value_from:
                    ref = value_from[field]
                    yield kind, ref["name"], ref["key"], ref.get("optional", False)


def keys_of(manifest: Manifest) -> set[str]:
    return set(manifest.get("data", {})) | set(manifest.get("stringData", {}))


@pytest.mark.parametrize("workload", workloads(), ids=object_id)
def test_every_configmap_and_secret_a_pod_needs_exists_with_its_keys(workload: Manifest) -> None:
    named = {(o["kind"], o["metadata"]["name"]): o for o in every_object()}
    required = [ref for ref in references(workload) if not ref[3]]
    assert required
    for kind, name, key, _ in required:
        assert (kind, name) in named, f"{kind}/{name} does not exist"
        assert key is None or key in keys_of(named[kind, name]), f"{kind}/{name} has no {key}"
    # The optional one is the admin token: without it reset is open, as in compose.
    optional = [
        (kind, name, key) for kind, name, key, is_optional in references(workload) if is_optional
    ]
    assert optional in ([], [("Secret", secrets.ADMIN_TOKEN.secret, secrets.ADMIN_TOKEN.key)])


@pytest.mark.parametrize("workload", workloads(), ids=object_id)
def test_every_mount_names_a_volume_and_every_sub_path_a_file_of_it(workload: Manifest) -> None:
    volumes = {volume["name"]: volume for volume in pod_spec(workload).get("volumes", [])}
    claims = {
        claim["metadata"]["name"] for claim in workload["spec"].get("volumeClaimTemplates", [])
    }
    for mount in only_container(workload)["volumeMounts"]:
        assert mount["name"] in volumes or mount["name"] in claims, mount
        if "subPath" in mount:
            items = volumes[mount["name"]]["configMap"]["items"]
            assert mount["subPath"] in {item["path"] for item in items}
    used = {mount["name"] for mount in only_container(workload)["volumeMounts"]}
    assert set(volumes) <= used, "no volume left unmounted"


def test_the_autoscaler_owns_the_node_count() -> None:
    autoscaler = find("HorizontalPodAutoscaler", nodes.NAME)
    target = autoscaler["spec"]["scaleTargetRef"]
    deployment = find(target["kind"], target["name"])
    assert object_id(deployment) == f"Deployment/{nodes.NAME}"
    assert target["apiVersion"] == deployment["apiVersion"]
    # The autoscaler sets the count; a `replicas` in the Deployment would reset it on every apply.
    assert "replicas" not in deployment["spec"]
    assert autoscaler["spec"]["minReplicas"] == 3
    assert autoscaler["spec"]["maxReplicas"] > 3
    (metric,) = autoscaler["spec"]["metrics"]
    assert metric["type"] == "Resource"
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    # Utilization is a share of the request: it must have one.
    assert only_container(deployment)["resources"]["requests"]["cpu"]


@pytest.mark.parametrize(
    ("budget", "workload"),
    [(nodes.NAME, f"Deployment/{nodes.NAME}"), (balancer.NAME, f"Deployment/{balancer.NAME}")],
)
def test_a_disruption_budget_covers_exactly_its_workload_s_pods(budget: str, workload: str) -> None:
    spec = find("PodDisruptionBudget", budget)["spec"]
    assert object_id(workload_selected_by(spec["selector"]["matchLabels"])) == workload
    assert spec["maxUnavailable"] == 1


# --- One source: the shared files -----------------------------------------------------------------


def test_the_config_maps_hold_the_shared_files_as_they_are() -> None:
    assert find("ConfigMap", balancer.NAME)["data"] == {
        "nginx.conf": conf.NGINX_MAIN_CONF.read_text(),
        "abacus.conf.template": conf.NGINX_TEMPLATE.read_text(),
        "abacus-resolver.envsh": conf.NGINX_RESOLVER_SCRIPT.read_text(),
        "abacus-balancer-secret.envsh": conf.NGINX_SECRET_SCRIPT.read_text(),
    }
    assert find("ConfigMap", redis.NAME)["data"] == {
        "redis.conf": conf.REDIS_CONF.read_text(),
        "redis-container.sh": conf.REDIS_CONTAINER_SCRIPT.read_text(),
    }


@pytest.mark.parametrize("workload", workloads(), ids=object_id)
def test_pods_roll_when_the_files_they_mount_change(workload: Manifest) -> None:
    mounted = sorted({name for kind, name, _, _ in references(workload) if kind == "ConfigMap"})
    annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
    if not mounted:
        assert CONFIG_HASH_ANNOTATION not in annotations
        return
    data = [find("ConfigMap", name)["data"] for name in mounted]
    assert annotations[CONFIG_HASH_ANNOTATION] == config_hash(*data)


def compose_service(name: str) -> dict[str, Any]:
    service = raw_compose()["services"][name]
    assert isinstance(service, dict)
    return service


def test_the_images_are_the_ones_compose_pins() -> None:
    assert (
        only_container(find("Deployment", balancer.NAME))["image"]
        == compose_service("nginx")["image"]
    )
    assert (
        only_container(find("StatefulSet", redis.NAME))["image"]
        == compose_service("redis")["image"]
    )
    node = only_container(find("Deployment", nodes.NAME))
    assert node["image"] == compose_service("node")["image"]


def test_redis_starts_and_is_checked_as_in_compose() -> None:
    # The same script and arguments, at the same paths: tests/test_compose.py runs them.
    container = only_container(find("StatefulSet", redis.NAME))
    assert container["command"] == compose_service("redis")["command"]
    assert (
        container["readinessProbe"]["exec"]["command"]
        == compose_service("redis")["healthcheck"]["test"][1:]
    )
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "config"]
    assert mount["mountPath"] == redis.CONF_DIR
    assert container["command"][1] == f"{redis.CONF_DIR}/{conf.REDIS_CONTAINER_SCRIPT.name}"


def test_the_development_secrets_are_the_committed_development_files() -> None:
    for key, path in render_kubernetes.DEV_SECRETS.items():
        secret = next(o for o in committed(DEV_SECRETS) if key in o.get("stringData", {}))
        assert secret["stringData"][key] == path.read_text()
    assert all(o["kind"] == "Secret" for o in committed(DEV_SECRETS))
    assert not any(o["kind"] == "Secret" for o in objects()), "real secrets are the operator's"


# --- Pods: resources, hardening, probes, stops ----------------------------------------------------


@pytest.mark.parametrize("workload", workloads(), ids=object_id)
def test_every_container_has_requests_and_limits(workload: Manifest) -> None:
    for container in pod_spec(workload)["containers"]:
        requests, limits = container["resources"]["requests"], container["resources"]["limits"]
        assert set(requests) == set(limits) == {"cpu", "memory"}
        assert quantity(requests["memory"]) <= quantity(limits["memory"])
        assert quantity(requests["cpu"]) <= quantity(limits["cpu"])


def quantity(text: str) -> float:
    """A Kubernetes quantity: 500m, 2, 256Mi, 1Gi."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi)?", text)
    assert match, text
    scale = {None: 1.0, "m": 1e-3, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30}
    return float(match[1]) * scale[match[2]]


def test_redis_may_use_more_memory_than_its_maxmemory() -> None:
    limit = only_container(find("StatefulSet", redis.NAME))["resources"]["limits"]["memory"]
    assert quantity(limit) >= 1.5 * byte_size(redis_settings()["maxmemory"])


@pytest.mark.parametrize("workload", workloads(), ids=object_id)
def test_every_pod_is_hardened_as_in_compose(workload: Manifest) -> None:
    spec = pod_spec(workload)
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    security = spec["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] != 0
    assert security["runAsGroup"] != 0
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec)
    assert not any("hostPath" in volume for volume in spec.get("volumes", []))
    for container in spec["containers"]:
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }


def test_the_node_pods_run_as_the_image_s_user_and_write_only_to_memory() -> None:
    deployment = find("Deployment", nodes.NAME)
    dockerfile_user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert dockerfile_user
    security = pod_spec(deployment)["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == tuple(
        map(int, dockerfile_user.groups())
    )
    mounts = {m["mountPath"]: m["name"] for m in only_container(deployment)["volumeMounts"]}
    tmp = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == mounts["/tmp"])
    assert tmp["emptyDir"]["medium"] == "Memory"
    env = env_values(only_container(deployment))
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")


def test_the_nodes_probes_ask_the_process_alone() -> None:
    """Liveness must not fail when Redis does (every node restarted at once), and readiness must
    not either: every node out of the headless Service leaves nginx without a peer, and its 502s
    say less than the nodes' own JSON 503s."""
    container = only_container(find("Deployment", nodes.NAME))
    for probe in ("livenessProbe", "readinessProbe"):
        http = container[probe]["httpGet"]
        assert http["path"] == "/livez"
        assert http["port"] == nodes.PORT_NAME
        # Kubernetes sends the pod's address as Host, which every node serves.
        assert "host" not in http
        assert "httpHeaders" not in http
    assert "/livez" in {getattr(route, "path", None) for route in ROUTES}
    assert Settings.from_env({}).serves_host("10.244.0.7:8000")


def test_the_balancer_s_probes_never_reach_a_node() -> None:
    container = only_container(find("Deployment", balancer.NAME))
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/livez", "port": balancer.PORT_NAME}
    assert env_values(container)["ABACUS_LISTEN"] == str(balancer.PORT)
    template = without_comments(nginx_config.TEMPLATE.read_text())
    (location,) = re.findall(r"location = /livez \{(.*?)\n    \}", template, re.S)
    assert "return 200 " in location
    assert "proxy_pass" not in location


def pre_stop(container: Manifest) -> list[str]:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert isinstance(command, list)
    return command


def test_a_node_leaves_the_service_before_its_graceful_stop_and_has_time_for_it() -> None:
    deployment = find("Deployment", nodes.NAME)
    command = pre_stop(only_container(deployment))
    assert command[0] == "sleep"
    sleep_s = int(command[1])
    # Longer than nginx's re-resolution (resolver valid=5s) plus DNS's own few seconds.
    assert sleep_s > 5
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] > sleep_s + GRACEFUL_TIMEOUT_S


def test_the_balancer_stops_gracefully_after_leaving_its_service() -> None:
    deployment = find("Deployment", balancer.NAME)
    shell, flag, script = pre_stop(only_container(deployment))
    assert (shell, flag) == ("/bin/sh", "-c")
    steps = [step.strip() for step in script.split(";")]
    sleep_s = int(shlex.split(steps[0])[1])
    # SIGTERM is nginx's fast stop, which drops what it holds; SIGQUIT lets it finish.
    assert steps[1] == "kill -QUIT 1"
    assert steps[2].startswith("while kill -0 1 ")
    # nginx may hold a request for its read timeout and then pass it on for up to 20 s more.
    longest = nginx_config.PROXY_READ_TIMEOUT_S + nginx_config.NEXT_UPSTREAM_TIMEOUT_S
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] > sleep_s + longest


# --- The balancer's configuration -----------------------------------------------------------------


def test_nginx_resolves_the_nodes_headless_service_by_its_fully_qualified_name() -> None:
    service = find("Service", nodes.SERVICE)
    assert service["spec"]["clusterIP"] == "None", "one A record per ready node"
    assert service["spec"].get("publishNotReadyAddresses", False) is False
    (port,) = service["spec"]["ports"]
    container = only_container(find("Deployment", balancer.NAME))
    names = [entry["name"] for entry in container["env"]]
    env = env_of(container)
    # The Downward API's namespace, defined before the variable that expands it.
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert names.index("POD_NAMESPACE") < names.index("ABACUS_UPSTREAM_SERVERS")
    # nginx's resolver knows no search domains: the full name, one `server` with `resolve`.
    host = f"{nodes.SERVICE}.$(POD_NAMESPACE).svc.{manifests.DEFAULT_CLUSTER_DOMAIN}:{port['port']}"
    expected = nginx_config.upstream_servers([host], extra="resolve")
    assert env["ABACUS_UPSTREAM_SERVERS"]["value"] == expected
    assert env["NGINX_ENTRYPOINT_LOCAL_RESOLVERS"]["value"] == "1"


def test_the_entrypoint_scripts_run_in_order_and_may_run() -> None:
    deployment = find("Deployment", balancer.NAME)
    (config,) = [v for v in pod_spec(deployment)["volumes"] if v["name"] == "config"]
    modes = {
        item["path"]: item.get("mode", config["configMap"]["defaultMode"])
        for item in config["configMap"]["items"]
    }
    mounted = {
        Path(m["mountPath"]).name: m["subPath"]
        for m in only_container(deployment)["volumeMounts"]
        if Path(m["mountPath"]).parent == Path(nginx_image.ENTRYPOINT_DIR)
    }
    assert set(mounted.values()) == {conf.NGINX_RESOLVER_SCRIPT.name, conf.NGINX_SECRET_SCRIPT.name}
    order = sorted(
        [*mounted, nginx_image.LOCAL_RESOLVERS_STEP, nginx_image.TEMPLATE_STEP],
        key=nginx_image.version_sort_key,
    )
    assert order[0] == nginx_image.LOCAL_RESOLVERS_STEP
    assert order[-1] == nginx_image.TEMPLATE_STEP
    for key in mounted.values():
        assert modes[key] & 0o111 == 0o111, "the entrypoint skips a .envsh without its exec bit"


def test_the_balancer_environment_sets_every_template_variable() -> None:
    container = only_container(find("Deployment", balancer.NAME))
    from_scripts = {"ABACUS_RESOLVER", "ABACUS_BALANCER_SECRET"}
    template = without_comments(nginx_config.TEMPLATE.read_text())
    assert nginx_config.template_variables(template) <= set(env_of(container)) | from_scripts
    assert from_scripts.isdisjoint(env_of(container))
    assert not any("SECRET" in name for name in env_of(container))


def test_secrets_are_files_where_the_settings_and_scripts_look() -> None:
    checks = [
        (find("Deployment", nodes.NAME), "REDIS_PASSWORD_FILE", secrets.REDIS_PASSWORD),
        (find("Deployment", nodes.NAME), "ABACUS_BALANCER_SECRET_FILE", secrets.BALANCER_SECRET),
    ]
    for workload, variable, key in checks:
        assert env_values(only_container(workload))[variable] == mounted_file(workload, key)
    # The scripts' defaults are where the pods mount their secrets.
    nginx_path = mounted_file(find("Deployment", balancer.NAME), secrets.BALANCER_SECRET)
    assert f"ABACUS_BALANCER_SECRET_PATH:-{nginx_path}}}" in conf.NGINX_SECRET_SCRIPT.read_text()
    redis_path = mounted_file(find("StatefulSet", redis.NAME), secrets.REDIS_PASSWORD)
    assert f"ABACUS_REDIS_PASSWORD_PATH:-{redis_path}}}" in conf.REDIS_CONTAINER_SCRIPT.read_text()


def mounted_file(workload: Manifest, key: secrets.SecretKey) -> str:
    """Where the pod finds a Secret's key: its volume's mount path and the item's path."""
    for volume in pod_spec(workload)["volumes"]:
        for source in volume.get("projected", {}).get("sources", []):
            secret = source.get("secret", {})
            for item in secret.get("items", []):
                if (secret["name"], item["key"]) == (key.secret, key.key):
                    (mount,) = [
                        m
                        for m in only_container(workload)["volumeMounts"]
                        if m["name"] == volume["name"]
                    ]
                    return f"{mount['mountPath']}/{item['path']}"
    raise AssertionError(f"{object_id(workload)} does not mount {key}")


def test_the_nodes_reach_redis_through_its_service() -> None:
    env = env_values(only_container(find("Deployment", nodes.NAME)))
    service = find("Service", redis.NAME)
    (port,) = service["spec"]["ports"]
    assert env["REDIS_URL"] == f"redis://{service['metadata']['name']}:{port['port']}/0"


def test_the_node_settings_are_documented_and_leave_the_id_to_the_pod_name() -> None:
    container = only_container(find("Deployment", nodes.NAME))
    assert set(env_of(container)) <= DOCUMENTED_NODE_SETTINGS
    assert "NODE_ID" not in env_of(container)


def test_the_kind_smoke_creates_the_secrets_the_pods_read() -> None:
    created = set(
        re.findall(r"create secret generic (\S+)[\s\\]+--from-file=(\w+)=", KIND_SMOKE.read_text())
    )
    keys = {secrets.REDIS_PASSWORD, secrets.BALANCER_SECRET, secrets.ADMIN_TOKEN}
    assert created == {(key.secret, key.key) for key in keys}
    assert f"apply --filename {MANIFESTS.relative_to(ROOT)}" in KIND_SMOKE.read_text()


# --- nginx -t -------------------------------------------------------------------------------------


def pod_environment(container: Manifest) -> dict[str, str]:
    """The container's environment as Kubernetes sets it: the Downward API's namespace, and
    $(NAME) of earlier variables expanded."""
    env: dict[str, str] = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m[1]], entry["value"])
        else:
            assert entry["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
            env[entry["name"]] = NAMESPACE
    return env


@pytest.fixture
def nginx_binary(request: pytest.FixtureRequest) -> str:
    require_stack_marker(request, "nginx_binary")
    binary = nginx_image.nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (make test installs it)")
    return binary


@pytest.mark.stack
def test_the_nginx_config_a_balancer_pod_renders_passes_nginx_t(
    tmp_path: Path, nginx_binary: str
) -> None:
    deployment = find("Deployment", balancer.NAME)
    container = only_container(deployment)
    # The scripts as the ConfigMap holds them, in the order the entrypoint sources them.
    data = find("ConfigMap", balancer.NAME)["data"]
    mounted = {
        Path(m["mountPath"]).name: m["subPath"]
        for m in container["volumeMounts"]
        if Path(m["mountPath"]).parent == Path(nginx_image.ENTRYPOINT_DIR)
    }
    scripts = []
    for name in sorted(mounted, key=nginx_image.version_sort_key):
        script = tmp_path / name
        script.write_text(data[mounted[name]])
        scripts.append(script)
    secret_file = tmp_path / "balancer_secret"
    secret_file.write_text(
        find("Secret", secrets.BALANCER_SECRET.secret)["stringData"][secrets.BALANCER_SECRET.key]
    )
    env = nginx_image.entrypoint_environment(
        pod_environment(container), scripts, nameserver=CLUSTER_DNS, secret_file=secret_file
    )
    assert env["ABACUS_RESOLVER"] == f"resolver {CLUSTER_DNS} valid=5s ipv6=off;"
    assert f"{nodes.SERVICE}.{NAMESPACE}.svc.cluster.local:" in env["ABACUS_UPSTREAM_SERVERS"]
    main_conf = nginx_image.render(
        nginx_image.for_this_nginx(nginx_binary, env, [nodes.PORT]), tmp_path / "prefix"
    )
    result = nginx_image.nginx_test(nginx_binary, main_conf)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
