#!/usr/bin/env bash
# Installs the servers the local stack and the tests run, when they are missing:
# redis-server and nginx (required), promtool (required: the tests check the Prometheus
# configuration and alerting rules with it; Debian's `prometheus` package), wrk (optional: the
# benchmark's load generator).
# Uses apt-get (as root, or with password-less sudo); otherwise says what to install. The local
# stack and the tests run on Linux only (docs/operations.md, "Platform support").
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

required=()
have redis-server || required+=(redis-server)
have nginx || required+=(nginx-light)
have promtool || required+=(prometheus)
optional=()
have wrk || optional+=(wrk)

if [ ${#required[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ]; then
    exit 0
fi

if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        sudo=()
    elif sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        sudo=(missing)
    fi
    if [ "${sudo[0]:-}" != missing ]; then
        echo "Installing with apt-get: ${required[*]:-} ${optional[*]:-}" >&2
        # The packages' scripts would start their services (redis-server, nginx, and prometheus on
        # :9090): the tests run servers of their own on free ports and need none of them, so
        # invoke-rc.d is told not to start anything (policy-rc.d exit 101), unless the machine
        # already has a policy of its own.
        policy=/usr/sbin/policy-rc.d
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
            "${sudo[@]}" chmod 755 "$policy"
            trap '"${sudo[@]}" rm -f "$policy"' EXIT
        fi
        "${sudo[@]}" apt-get update -qq
        if [ ${#required[@]} -gt 0 ]; then
            # No recommends: prometheus's would bring node-exporter, another service.
            DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
                --no-install-recommends "${required[@]}" >/dev/null
        fi
        if [ ${#optional[@]} -gt 0 ]; then
            DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${optional[@]}" >/dev/null \
                || echo "note: could not install ${optional[*]}; the benchmark falls back to Python" >&2
        fi
        exit 0
    fi
fi

if [ ${#required[@]} -gt 0 ]; then
    echo "Missing: ${required[*]}. Install them, e.g. 'sudo apt-get install -y redis-server nginx-light prometheus'" >&2
    echo "(Debian/Ubuntu), then run this again. Not on Linux: use the compose stack." >&2
    exit 1
fi
echo "note: wrk is missing; the benchmark falls back to a slower Python load generator" >&2
