#!/usr/bin/env bash
# Makes sure `redis-server` is on PATH for the tests that run a real Redis (the RedisStore unit
# tests and tests/redis_fleet.rs), installing Debian's `redis-server` package when it is
# missing (Redis 6.2 or newer).
#
# It never starts a server: every test starts its own on a free loopback port and stops it. The
# package's post-install may start a system service where an init system runs; the tests do not
# use it.
set -euo pipefail
exec "$(dirname "$0")/ensure-command.sh" redis-server redis-server
