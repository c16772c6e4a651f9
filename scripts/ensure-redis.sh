#!/usr/bin/env bash
# Makes sure `redis-server` is on PATH for the tests that run a real Redis (the RedisStore unit
# tests and tests/redis_fleet.rs). Installs Debian's `redis-server` package when it is missing.
#
# It never starts a server: every test starts its own on a free loopback port and stops it.
# CI runs this as root with no standard input, so apt runs non-interactively.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
    echo "ensure-redis: found $(command -v redis-server) ($(redis-server --version | head -n 1)); nothing to install"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-redis: redis-server is not on PATH and apt-get is not available; install Redis (6.2 or newer) by hand" >&2
    exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo -n)
    else
        echo "ensure-redis: redis-server is not on PATH; installing it needs root (or sudo)" >&2
        exit 1
    fi
fi

echo "ensure-redis: redis-server is not on PATH; installing Debian's redis-server package"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update </dev/null
"${sudo[@]}" apt-get install -y --no-install-recommends redis-server </dev/null

# The package's post-install may start a system service where an init system runs; the tests
# do not use it (they start their own server), so it is left as the package set it up.
if ! command -v redis-server >/dev/null 2>&1; then
    echo "ensure-redis: the package installed, but redis-server is still not on PATH" >&2
    exit 1
fi
echo "ensure-redis: installed $(command -v redis-server) ($(redis-server --version | head -n 1))"
