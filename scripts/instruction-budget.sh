#!/usr/bin/env bash
# The hot path's instruction budgets: what a request with a valid token costs through the layer,
# counted under `valgrind --tool=callgrind` next to its baseline in the same build, and checked
# against a ceiling. Part of the test command, so that a change that makes every request dearer
# (an allocation, a header map cloned, a lookup that scans) fails CI rather than waiting for
# someone to run the benchmarks on a quiet machine.
#
# Counted, not timed: a build runs the same instructions from run to run, on a busy machine as
# on a quiet one (the loopback counts move by about ten a request with how the runtime's polls
# fall). A build moves the counts by up to about 60 a request on both sides of a comparison (where
# the compiler lays out and inlines code), so each ceiling leaves about 130 instructions a
# request of room over this project's figures (a `Uri` clone more in `route`, about 135, puts
# (a) over; allocations are held apart, by tests/hot_path_no_extra_allocation.rs):
#
#   (a) trivial inner service: the layer over tower-http's `SetRequestHeader` adding the same
#       static bearer (the floor any auth layer pays)      1.196x, ceiling 1.22x
#   loopback, hyper-util's `Client`, shared (`&service`): layered over bare
#                                                          1.027x, ceiling 1.030x
#   loopback, cloned per call (`service.clone().oneshot`): layered over bare
#                                                          1.039x, ceiling 1.042x
#
# The README's Benchmarks section has the timed figures these stand beside; raise a ceiling
# only with a reason written in the commit that does it.
#
#   scripts/instruction-budget.sh
#
# Needs valgrind (installed when missing, as the test command's other tools are).
set -euo pipefail
# A failure inside `$(...)` (a run that failed under valgrind) stops the script too.
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

scripts/ensure-command.sh valgrind valgrind >/dev/null
cargo build -q --release -p tower-mcp-oauth --example hot_path_instructions \
    --example loopback_instructions
examples=target/release/examples

# Requests in the two runs of each contestant: their difference's count divided by the
# difference of the numbers is the count a request, start-up and warm-up taken out.
LOW=2000
HIGH=12000

# Instructions of one run: BINARY CONTESTANT N.
count() {
    local out
    out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1) || {
        echo "$out" >&2
        echo "instruction-budget: '$*' failed under valgrind" >&2
        exit 1
    }
    local collected
    collected=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' <<<"$out")
    if [ -z "$collected" ]; then
        echo "$out" >&2
        echo "instruction-budget: no instruction count in callgrind's report for '$*'" >&2
        exit 1
    fi
    echo "$collected"
}

# Instructions a request: BINARY CONTESTANT.
per_request() {
    local low high
    low=$(count "$1" "$2" "$LOW")
    high=$(count "$1" "$2" "$HIGH")
    echo $(((high - low) / (HIGH - LOW)))
}

failed=0
# NAME BINARY BASELINE LAYERED CEILING
check() {
    local name=$1 binary=$examples/$2 baseline layered
    baseline=$(per_request "$binary" "$3")
    layered=$(per_request "$binary" "$4")
    if ! awk -v name="$name" -v b="$baseline" -v l="$layered" -v c="$5" 'BEGIN {
        ratio = l / b
        verdict = ratio <= c ? "within" : "OVER"
        printf "%-36s %7d vs %7d (+%d): %.4fx, ceiling %.3fx: %s\n", name, l, b, l - b, ratio, c, verdict
        exit ratio <= c ? 0 : 1
    }'; then
        failed=1
    fi
}

echo "instructions a request with a valid token (callgrind, layered vs baseline):"
check "(a) trivial service, over the floor" hot_path_instructions floor layered 1.22
check "loopback, shared" loopback_instructions bare-shared layered-shared 1.030
check "loopback, cloned per call" loopback_instructions bare layered 1.042

if [ "$failed" -ne 0 ]; then
    echo "instruction-budget: over a ceiling; see scripts/code-footprint.sh and the README's Benchmarks section for where a request's cost goes" >&2
    exit 1
fi
