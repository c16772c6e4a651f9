#!/usr/bin/env bash
# The hot path's instruction budgets: what a request with a valid token costs through the layer,
# counted under `valgrind --tool=callgrind` next to its baseline in the same build, and checked
# against a ceiling. Part of the test command, so that a change that makes every request
# markedly dearer (a header map cloned, a lookup that scans every server) fails CI rather than
# waiting for someone to run the benchmarks on a quiet machine. Allocations are held apart, by
# tests/hot_path_no_extra_allocation.rs.
#
# Counted, not timed: on one machine a build runs the same instructions from run to run, on a
# busy machine as on a quiet one (over loopback the counts move by up to about 20 a request
# with how the runtime's polls fall). A build moves them by up to about 60 a request on each
# side of a comparison (where the compiler lays out and inlines code; glibc's `memcpy`, chosen
# for the CPU, is about 250 of them), so (a)'s ceiling leaves about 200 instructions a request
# of room over this project's figures: a change costing less passes, one costing several
# hundred does not. Another machine read one loopback baseline 443 lower (below), so the two
# loopback ceilings leave about 700 here. The check of servers held compares the layer with
# itself, so a build moves both sides together; its ceiling is issue 11's 1.05x. The
# measured figures, and what the ceilings caught when tried, are in the README's Benchmarks
# section. A ceiling should rise only with a reason written in the commit that raises it.
#
#   scripts/instruction-budget.sh
#
# Needs valgrind (installed when missing, as the test command's other tools are).
set -euo pipefail
# A failure inside `$(...)` (a run that failed under valgrind) stops the script too.
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
source scripts/lib/release-example.sh

scripts/ensure-command.sh valgrind valgrind >&2
hot_path=$(release_example hot_path_instructions)
loopback=$(release_example loopback_instructions)

# Requests in the two runs of each contestant: their difference's count divided by the
# difference of the numbers is the count a request, start-up and warm-up taken out.
LOW=2000
HIGH=12000

# Instructions of one run: BINARY CONTESTANT N. Options from VALGRIND_OPTS could change what
# callgrind counts (`--instr-atstart=no` counts nothing), so none are taken from it.
count() {
    local out collected
    out=$(env -u VALGRIND_OPTS valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1) || {
        echo "$out" >&2
        echo "instruction-budget: '$*' failed under valgrind" >&2
        exit 1
    }
    collected=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' <<<"$out")
    if [ -z "$collected" ]; then
        echo "$out" >&2
        echo "instruction-budget: no instruction count in callgrind's report for '$*'" >&2
        exit 1
    fi
    echo "$collected"
}

# Instructions a request: BINARY CONTESTANT. A count that does not grow with the requests
# measured nothing, and a ratio of it would pass any ceiling. Measured ROUNDS times and the
# median taken, so that one run disturbed by something outside the program (a count of one run
# moving by millions is a few hundred a request) neither fails nor passes a check alone; every
# reading goes to the log, so a failure in CI shows whether the runs agreed. Odd, so that the
# median is one of the readings.
ROUNDS=3
per_request() {
    local low high readings=()
    for ((round = 0; round < ROUNDS; round++)); do
        low=$(count "$1" "$2" "$LOW")
        high=$(count "$1" "$2" "$HIGH")
        if [ "$high" -le "$low" ]; then
            echo "instruction-budget: '$1 $2' counted $low for $LOW requests and $high for $HIGH" >&2
            exit 1
        fi
        readings+=($(((high - low) / (HIGH - LOW))))
    done
    echo "  $(basename "$1") $2: ${readings[*]}" >&2
    printf '%s\n' "${readings[@]}" | sort -n | sed -n "$(((ROUNDS + 1) / 2))p"
}

# Each contestant's figure, counted once: `layered` is both (a)'s layered side and the baseline
# of a service made per request, and counting it again would cost three more pairs of runs.
declare -A counted=()
# Sets `figure` to BINARY CONTESTANT's instructions a request (see `per_request`).
count_once() {
    local key="$1 $2"
    if [ -z "${counted[$key]:-}" ]; then
        counted[$key]=$(per_request "$1" "$2")
    fi
    figure=${counted[$key]}
}

failed=0
# NAME BINARY BASELINE LAYERED CEILING
check() {
    local name=$1 binary=$2 baseline layered figure
    count_once "$binary" "$3"
    baseline=$figure
    count_once "$binary" "$4"
    layered=$figure
    if ! awk -v name="$name" -v b="$baseline" -v l="$layered" -v c="$5" 'BEGIN {
        ratio = l / b
        verdict = ratio <= c ? "within" : "OVER"
        printf "%-42s %7d vs %7d (+%d): %.4fx, ceiling %.3fx: %s\n", name, l, b, l - b, ratio, c, verdict
        exit ratio <= c ? 0 : 1
    }'; then
        failed=1
    fi
}

# The host, since the loopback counts are not the same on every machine (below): its kernel,
# CPU (and the features glibc chooses its `memcpy` by, as valgrind shows them to the program's
# glibc only in part) and glibc. A field the machine does not tell is printed empty.
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
flags=$(awk -F': ' '/^flags/ { print $2; exit }' /proc/cpuinfo 2>/dev/null |
    tr ' ' '\n' | grep -xE 'avx2|avx512f|erms|fsrm' | tr '\n' ' ' || true)
echo "host: $(uname -srm), $(getconf _NPROCESSORS_ONLN) CPUs, ${cpu:-?} (${flags% }), $(getconf GNU_LIBC_VERSION 2>/dev/null || true)"
echo "instructions a request with a valid token ($(valgrind --version), layered vs baseline, median of $ROUNDS):"
# (a): the trivial inner service, the layer over tower-http's `SetRequestHeader` adding the same
# static bearer, the floor any auth layer pays.
check "(a) trivial service, over the floor" "$hot_path" floor layered 1.235
# The same layer holding tokens for 10,000 servers against one, calling one of them (URLs of
# one length): the lookup must not grow with the number held. The ceiling is issue 11's 1.05x
# for the per-request cost, applied to instructions (one server is the cheapest case: its table
# is searched without hashing the origin).
check "(a) 10,000 servers held, over one" "$hot_path" held-1 held-10000 1.05
# A service made for each request over the same layer, as a web app's handler makes one
# (`layer_for(user).layer(client)`), against one service for all: what making and dropping a
# service costs (the shared state's allocation, the spare inner service's clone at its first
# request). The layer's state was once allocated aligned to a cache line, which glibc serves
# with `posix_memalign` at about 510 instructions more a service (7,329 against 6,439, 1.138x;
# 483 over the padded 6,846 vs 6,445); the ceiling leaves about 180 of room over today's
# figure and fails that.
check "(a) a service made per request, over one" "$hot_path" layered per-request 1.09
# hyper-util's `Client` over loopback (the server's instructions in both): one service shared
# through `&service`, and both cloned per call (`service.clone().oneshot`). The comparisons over
# a trivial service read the same on CI's machine as on the machine that set their ceilings,
# to the instruction; over loopback, CI read the bare shared client 443 instructions a request
# lower (51,136 against 51,579 here, 51,577-51,596 over several runs; the same commit, build
# path, toolchain and valgrind), the layered shared side within 10 (52,991 against 52,999), and
# the cloned pair close (53,784 vs 51,755 against 53,733 vs 51,742). An empty or padded
# environment, both cores loaded and a fresh network namespace did not reproduce it here; the
# likely cause is the machine's side of a loopback call, which callgrind does not count but
# whose answers it does (a CPU or glibc difference is not ruled out). So these two ceilings
# allow either baseline to read 450 lower than here with about 200 of room left:
# (layered + 200) / (bare - 450), from 52,999 vs 51,579 shared and 53,733 vs 51,742 cloned; here
# that leaves about 700. A change on the path (a) measures, dearer by several hundred
# instructions, still fails (a), which reads the same across machines; one only loopback
# sees (hyper's body polling through the layer's, the shared `&service` form, the clone per
# call) fails here past about 700.
check "loopback, shared" "$loopback" bare-shared layered-shared 1.041
check "loopback, cloned per call" "$loopback" bare layered 1.052

if [ "$failed" -ne 0 ]; then
    echo "instruction-budget: over a ceiling; scripts/code-footprint.sh and the README's Benchmarks section show where a request's cost goes" >&2
    exit 1
fi
