#!/usr/bin/env bash
# The code a call runs, counted in 64-byte lines: hyper-util's `Client` bare and under the layer
# over loopback (the `loopback_instructions` example, the server's code included), under
# `valgrind --tool=callgrind --dump-instr=yes`. A line counts when the instructions in it ran at
# least N times in a run of N calls after 100 of warm-up: once a call but for at most 100 of the
# N + 100 (with the default N, 97% of the calls).
#
# Why lines and not instructions: a loopback call runs far more code than a core's L1
# instruction cache holds, so each call fetches its code again, a line at a time; the lines the
# layer adds are what its calls wait for, more than the instructions it adds. Deterministic for
# a build (unlike timings), though a change anywhere moves where functions fall against line
# boundaries by a few lines. The build counted is the plain release build
# (scripts/lib/release-example.sh): no line tables, whatever CARGO_PROFILE_RELEASE_DEBUG says.
#
#   scripts/code-footprint.sh [N] [TOP]
#
# prints the lines per call for each side, their difference, and the TOP functions whose lines
# differ most (20 by default). `SIDES="bare-shared layered-shared"` compares the two sent through
# a shared reference instead of cloned per call (see the example). Needs valgrind and python3.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
source scripts/lib/release-example.sh
N=${1:-3000}
TOP=${2:-20}
SIDES=${SIDES:-bare layered}
read -r BARE LAYERED EXTRA <<<"$SIDES"
if [ -z "$LAYERED" ] || [ -n "$EXTRA" ]; then
    echo "SIDES must name two contestants of the example, the baseline first: got '$SIDES'" >&2
    exit 2
fi
BIN=$(release_example loopback_instructions)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for side in $SIDES; do
    # The cost lines are then `address line cost`; VALGRIND_OPTS is not read, so nothing
    # changes what is counted.
    if ! env -u VALGRIND_OPTS valgrind --tool=callgrind --dump-instr=yes --dump-line=yes --compress-pos=no \
        --compress-strings=no --callgrind-out-file="$OUT/$side" "$BIN" "$side" "$N" \
        >"$OUT/$side.log" 2>&1; then
        cat "$OUT/$side.log" >&2
        exit 1
    fi
done
python3 - "$OUT" "$N" "$TOP" "$BARE" "$LAYERED" <<'EOF'
import collections, re, sys

out, n, top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def lines(path):
    """Per 64-byte line of code run at least n times: the functions with instructions in it."""
    cost, owner = collections.Counter(), {}
    obj = fn = None
    call_follows = False
    for line in open(path):
        if line.startswith("ob="):
            obj = line[3:].strip()
        elif line.startswith("fn="):
            fn = line[3:].strip()
        elif line.startswith("calls="):
            # The next cost line is the call's inclusive cost, not the instruction's own.
            call_follows = True
        else:
            m = re.match(r"^(0x[0-9a-f]+)\s+\d+\s+(\d+)", line)
            if m:
                if call_follows:
                    call_follows = False
                    continue
                at = (obj, int(m.group(1), 16))
                cost[at] += int(m.group(2))
                owner[at] = fn
    hot = collections.defaultdict(set)
    for (obj, address), ran in cost.items():
        if ran >= n:
            hot[(obj, address >> 6)].add(owner[(obj, address)])
    per_function = collections.Counter()
    for functions in hot.values():
        for f in functions:
            per_function[f] += 1 / len(functions)
    return len(hot), per_function

bare, bare_fns = lines(f"{out}/{sys.argv[4]}")
layered, layered_fns = lines(f"{out}/{sys.argv[5]}")
print(f"code lines run per call: bare {bare}, layered {layered}, "
      f"difference {layered - bare} ({(layered - bare) * 64} bytes)")
names = set(bare_fns) | set(layered_fns)
rows = sorted(names, key=lambda f: -abs(layered_fns[f] - bare_fns[f]))[:top]
print(f"{'layered - bare':>14} {'layered':>8} {'bare':>6}  function")
for f in rows:
    print(f"{layered_fns[f] - bare_fns[f]:14.1f} {layered_fns[f]:8.1f} {bare_fns[f]:6.1f}  {f[:150]}")
EOF
