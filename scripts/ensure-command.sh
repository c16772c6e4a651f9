#!/usr/bin/env bash
# Makes sure COMMAND is on PATH, installing Debian's PACKAGE when it is missing:
#
#   scripts/ensure-command.sh COMMAND PACKAGE
#
# The test command's tools that are not Rust crates (`redis-server` for the tests that run a real
# Redis, `valgrind` for the instruction budgets) come this way, so that a fresh machine runs the
# test command as it is. CI runs this as root with no standard input, so apt runs
# non-interactively.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 COMMAND PACKAGE" >&2
    exit 2
fi
command=$1
package=$2

if command -v "$command" >/dev/null 2>&1; then
    # The version goes in the log: a package too old for the tests shows there.
    echo "ensure-command: found $(command -v "$command") ($("$command" --version 2>&1 | head -n 1)); nothing to install"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-command: $command is not on PATH and apt-get is not available; install $package by hand" >&2
    exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo -n)
    else
        echo "ensure-command: $command is not on PATH; installing $package needs root (or sudo)" >&2
        exit 1
    fi
fi

echo "ensure-command: $command is not on PATH; installing Debian's $package package"
# Through `env`: sudo would drop an exported variable.
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    "$package" </dev/null

if ! command -v "$command" >/dev/null 2>&1; then
    echo "ensure-command: the $package package installed, but $command is still not on PATH" >&2
    exit 1
fi
echo "ensure-command: installed $(command -v "$command") ($("$command" --version 2>&1 | head -n 1))"
