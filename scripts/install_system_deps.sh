#!/usr/bin/env bash
# Installs the servers the local stack and the tests run, when they are missing:
# redis-server and nginx (required), wrk (optional: the benchmark's load generator).
# Uses apt-get (as root, or with password-less sudo); otherwise says what to install. The local
# stack and the tests run on Linux only (docs/operations.md, "Platform support").
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

required=()
have redis-server || required+=(redis-server)
have nginx || required+=(nginx-light)
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
        "${sudo[@]}" apt-get update -qq
        if [ ${#required[@]} -gt 0 ]; then
            DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${required[@]}" >/dev/null
        fi
        if [ ${#optional[@]} -gt 0 ]; then
            DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${optional[@]}" >/dev/null \
                || echo "note: could not install ${optional[*]}; the benchmark falls back to Python" >&2
        fi
        exit 0
    fi
fi

if [ ${#required[@]} -gt 0 ]; then
    echo "Missing: ${required[*]}. Install them, e.g. 'sudo apt-get install -y redis-server nginx-light'" >&2
    echo "(Debian/Ubuntu), then run this again. Not on Linux: use the compose stack." >&2
    exit 1
fi
echo "note: wrk is missing; the benchmark falls back to a slower Python load generator" >&2
