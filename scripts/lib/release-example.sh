# Sourced by the scripts that count a request's instructions under valgrind
# (instruction-budget.sh, code-footprint.sh); defines `release_example NAME`.
#
# `release_example NAME` builds the example NAME of tower-mcp-oauth in release and prints the
# path of its executable, as cargo reports it: wherever CARGO_TARGET_DIR or `build.target-dir`
# put it, never a stale binary left in target/. The counts are meant to be the plain release
# build's, so the two variables that most often change its code in a developer's shell are left
# out of the build: `RUSTFLAGS` (such as `target-cpu=native`) and line tables for profiling,
# which move a count by tens a request. Other settings (a `rustflags` in a cargo config, other
# `CARGO_PROFILE_RELEASE_*` variables) still apply. Compiler messages are shown as usual.

release_example() {
    local name=$1 messages executable
    messages=$(env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_PROFILE_RELEASE_DEBUG \
        cargo build -q --release -p tower-mcp-oauth --example "$name" \
        --message-format=json-render-diagnostics)
    executable=$(sed -n "s|.*\"executable\":\"\([^\"]*/$name\)\".*|\1|p" <<<"$messages" | tail -n 1)
    if [ -z "$executable" ] || [ ! -x "$executable" ]; then
        echo "release-example: cargo reported no executable for the example $name" >&2
        return 1
    fi
    echo "$executable"
}
