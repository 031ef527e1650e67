#!/usr/bin/env bash
# Smoke test of the Kubernetes manifests, for machines with Docker, kind and kubectl: create a kind
# cluster, build the node image and load it into the cluster, create the secrets, apply
# kubernetes/abacus.yaml, wait until everything is ready, run the consistency checker through the
# balancer, scale the nodes up (nginx must find the new pods by itself) and down while the checker
# runs again, and always delete the cluster. Exit 0 only when all of that succeeded.
#
# It cannot run where there is no Docker engine (CI has none): tests/test_kubernetes.py proves the
# manifests statically there. The cluster is its own (abacus-smoke), so it never touches another.
# Environment: PYTHON (default .venv/bin/python, else python3), ABACUS_KIND_CLUSTER (default
# abacus-smoke), ABACUS_KIND_PORT (the local port of the balancer, default 18080),
# ABACUS_KIND_KEEP=1 (keep the cluster afterwards, to look at it).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cluster=${ABACUS_KIND_CLUSTER:-abacus-smoke}
port=${ABACUS_KIND_PORT:-18080}
namespace=abacus
image=abacus-node:local
url=http://127.0.0.1:$port
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
for tool in docker kind kubectl; do
    if ! command -v "$tool" >/dev/null; then
        echo "kind_smoke: needs $tool (and a running Docker engine)" >&2
        exit 2
    fi
done

kubectl=(kubectl --context "kind-$cluster" --namespace "$namespace")
secrets_dir=$(mktemp -d)
forward_pid=""
checker_pid=""

cleanup() {
    local status=$?
    trap - EXIT
    if [[ -n $checker_pid ]]; then kill "$checker_pid" 2>/dev/null || true; fi
    if [[ -n $forward_pid ]]; then kill "$forward_pid" 2>/dev/null || true; fi
    rm -rf "$secrets_dir"
    if ((status != 0)); then
        echo "kind_smoke: FAILED (exit $status); the namespace's state and recent logs follow" >&2
        "${kubectl[@]}" get all,pvc,hpa,pdb,networkpolicy --output wide >&2 || true
        "${kubectl[@]}" get events --sort-by=.lastTimestamp >&2 || true
        "${kubectl[@]}" logs --selector app.kubernetes.io/part-of=abacus --all-containers \
            --prefix --tail=40 >&2 || true
    fi
    if [[ ${ABACUS_KIND_KEEP:-} == 1 ]]; then
        echo "kind_smoke: kept the cluster: kind delete cluster --name $cluster" >&2
    elif ! kind delete cluster --name "$cluster"; then
        echo "kind_smoke: kind delete cluster failed" >&2
        ((status != 0)) || status=1
    fi
    exit "$status"
}
trap cleanup EXIT

kind create cluster --name "$cluster" --wait 180s
docker build --tag "$image" .
kind load docker-image "$image" --name "$cluster"
kubectl --context "kind-$cluster" create namespace "$namespace"

# Secrets of its own, as an operator makes them (docs/operations.md), never the development ones:
# files of this user only, never a command line. The admin token becomes an environment variable,
# so it has no newline.
(
    umask 077
    for name in redis_password balancer_secret admin_token; do
        "$PYTHON" -c 'import secrets; print(secrets.token_hex(32), end="")' >"$secrets_dir/$name"
    done
)
"${kubectl[@]}" create secret generic abacus-redis-password \
    --from-file=redis_password="$secrets_dir/redis_password"
"${kubectl[@]}" create secret generic abacus-balancer-secret \
    --from-file=balancer_secret="$secrets_dir/balancer_secret"
"${kubectl[@]}" create secret generic abacus-admin-token \
    --from-file=admin_token="$secrets_dir/admin_token"

"${kubectl[@]}" apply --filename kubernetes/abacus.yaml
"${kubectl[@]}" rollout status statefulset/abacus-redis --timeout=300s
# The autoscaler owns the node count: it raises the Deployment's first pod to its minReplicas.
wait_ready_nodes() {
    "${kubectl[@]}" wait deployment/abacus-node --timeout=300s \
        --for=jsonpath='{.status.readyReplicas}'="$1"
}
wait_ready_nodes 3
"${kubectl[@]}" rollout status deployment/abacus-node --timeout=300s
"${kubectl[@]}" rollout status deployment/abacus-balancer --timeout=300s

"${kubectl[@]}" port-forward service/abacus-balancer "$port:8080" >/dev/null &
forward_pid=$!
for _ in $(seq 60); do
    if "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "$url/livez" 2>/dev/null; then
        break
    fi
    sleep 1
done

check() {
    # The checker reads the token from its environment: off the command line, out of `ps`.
    ABACUS_ADMIN_TOKEN=$(cat "$secrets_dir/admin_token") "$PYTHON" scripts/check_consistency.py \
        --url "$url" --concurrency 32 --reset "$@"
}
scale_nodes() {
    "${kubectl[@]}" patch horizontalpodautoscaler/abacus-node --type merge \
        --patch "{\"spec\": {\"minReplicas\": $1, \"maxReplicas\": $1}}"
}

"$PYTHON" scripts/wait_for_nodes.py --url "$url" --nodes 3
check --requests 2000

# More pods: nginx re-resolves the headless Service and sends them requests, without a reload.
scale_nodes 5
wait_ready_nodes 5
"$PYTHON" scripts/wait_for_nodes.py --url "$url" --nodes 5

# Fewer, while adds are in flight: each pod leaves the Service in its preStop, then stops
# gracefully; the history stays consistent.
check --requests 6000 &
checker_pid=$!
scale_nodes 2
"${kubectl[@]}" wait deployment/abacus-node --timeout=300s --for=jsonpath='{.status.replicas}'=2
wait "$checker_pid"
checker_pid=""
"$PYTHON" scripts/wait_for_nodes.py --url "$url" --nodes 2
echo "kind_smoke: OK (ready, consistent through the balancer at 3 nodes, and while going from 5 to 2)"
