#!/usr/bin/env bash
# Smoke test of the compose stack, for machines with Docker: build and start it, wait until every
# service is healthy, run the consistency checker through the balancer, and always tear it down.
# Exit 0 only when all of that succeeded.
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

cleanup() {
    local status=$?
    trap - EXIT
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
environment = json.load(sys.stdin)["services"]["node1"].get("environment") or {}
print(environment.get("ABACUS_ADMIN_TOKEN") or "")
')

"${compose[@]}" up --detach --build --wait --wait-timeout 300

# The checker reads the token from its environment: off the command line, out of `ps`.
ABACUS_ADMIN_TOKEN=$admin_token "$PYTHON" scripts/check_consistency.py \
    --url "$url" --requests 2000 --concurrency 32 --reset
echo "compose_smoke: OK (the stack came up healthy and the history through $url is consistent)"
