#!/usr/bin/env bash
# Smoke test of the compose stack, for machines with Docker: build and start it, wait until every
# service is healthy, run the consistency checker through the balancer, scale the nodes up (nginx
# must find the new replicas by itself) and down while the checker runs again, and always tear it
# down. Exit 0 only when all of that succeeded.
#
# It runs as a compose project of its own (abacus-smoke), so it never resets or deletes the data
# of a stack you started with `docker compose up`; its ports are the same, though, so stop yours
# first. Environment: PYTHON (default .venv/bin/python, else python3), ABACUS_SMOKE_PROJECT,
# ABACUS_SMOKE_URL, and anything compose.yaml reads (.env is used as usual).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

project=${ABACUS_SMOKE_PROJECT:-abacus-smoke}
url=${ABACUS_SMOKE_URL:-http://localhost:8080}
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
compose=(docker compose --project-name "$project")
checker_pid=""

cleanup() {
    local status=$?
    trap - EXIT
    if [[ -n $checker_pid ]]; then kill "$checker_pid" 2>/dev/null || true; fi
    if ((status != 0)); then
        echo "compose_smoke: FAILED (exit $status); the stack's state and recent logs follow" >&2
        "${compose[@]}" ps --all >&2 || true
        "${compose[@]}" logs --no-color --tail=40 >&2 || true
    fi
    # --volumes: this project's Redis holds nothing but the smoke test's own adds.
    if ! "${compose[@]}" down --volumes --remove-orphans; then
        echo "compose_smoke: docker compose down failed" >&2
        ((status != 0)) || status=1
    fi
    exit "$status"
}
trap cleanup EXIT

# The admin token the nodes actually got (from the shell or .env), to let the checker reset.
admin_token=$("${compose[@]}" config --format json | "$PYTHON" -c '
import json, sys
environment = json.load(sys.stdin)["services"]["node"].get("environment") or {}
print(environment.get("ABACUS_ADMIN_TOKEN") or "")
')

check() {
    # The checker reads the token from its environment: off the command line, out of `ps`.
    ABACUS_ADMIN_TOKEN=$admin_token "$PYTHON" scripts/check_consistency.py \
        --url "$url" --concurrency 32 --reset "$@"
}

"${compose[@]}" up --detach --build --wait --wait-timeout 300
"$PYTHON" scripts/wait_for_nodes.py --url "$url" --nodes 3
check --requests 2000

# More replicas: nginx re-resolves the service's name and sends them requests, without a reload.
"${compose[@]}" up --detach --wait --wait-timeout 300 --no-recreate --scale node=5
"$PYTHON" scripts/wait_for_nodes.py --url "$url" --nodes 5

# Fewer, while adds are in flight: the stopped replicas finish what they hold, nginx passes on
# what they refuse, and the history stays consistent.
check --requests 6000 &
checker_pid=$!
"${compose[@]}" up --detach --wait --wait-timeout 300 --no-recreate --scale node=2
wait "$checker_pid"
checker_pid=""
"$PYTHON" scripts/wait_for_nodes.py --url "$url" --nodes 2
echo "compose_smoke: OK (healthy, consistent through $url at 3 nodes, and while going from 5 to 2)"
