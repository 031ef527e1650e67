#!/bin/sh
# Redis in a container, the same in compose and on Kubernetes (both mount this file beside
# redis.conf, and run it with sh):
#   start [OPTION...]  redis-server with the shared redis.conf, listening on every address of the
#                      container (its network is private: compose's internal one, the pod's) and
#                      with the password from the secret file
#   ping [OPTION...]   the health check: exit 0 when an authenticated PING gets PONG
# OPTIONs go to redis-server or redis-cli as they are (the tests give a port of their own). The
# local stack runs redis-server on 127.0.0.1 without a password, and without this script.
#
# The password reaches redis-server on its standard input (the final "-") and redis-cli through
# REDISCLI_AUTH, so it is never on a command line, in redis-server's environment or on disk.
set -eu

password_file=${ABACUS_REDIS_PASSWORD_PATH:-/run/secrets/redis_password}
conf=$(dirname "$0")/redis.conf

read_password() {
    password=$(cat "$password_file") || {
        echo "redis: cannot read the redis_password secret at $password_file" >&2
        exit 1
    }
    # It goes into redis.conf's syntax as requirepass "<password>": nothing may end or escape it.
    case $password in
        "" | *[[:space:]]* | *'"'* | *\\*)
            echo "redis: the redis_password secret must be one word without quotes or backslashes" >&2
            exit 1 ;;
    esac
}

action=${1:-}
[ $# -eq 0 ] || shift
case $action in
    start)
        read_password
        umask 077
        # exec: the container's stop signal reaches redis-server itself.
        exec redis-server "$conf" --bind 0.0.0.0 "$@" - <<END
requirepass "$password"
END
        ;;
    ping)
        read_password
        REDISCLI_AUTH=$password redis-cli "$@" ping | grep -qx PONG ;;
    *)
        echo "usage: $0 start|ping [OPTION...]" >&2
        exit 2 ;;
esac
