#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ one after another, each for FUZZ_SECONDS (default 60) in a
# single process, and prints executions, exec/s, corpus size and crashes per target.
#
#   scripts/fuzz.sh                      # every target, 60 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh     # 5 minutes each
#   scripts/fuzz.sh codesign okta_answer # only these
#
# Each target grows its corpus in fuzz/work/<target> (git-ignored), starting from the committed
# seeds in fuzz/corpus/<target>, which are only read. Crashes land in fuzz/artifacts/<target>;
# reproduce one with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>` in fuzz/. Exit status 1
# when any target crashed, timed out or ran out of memory.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
# A single input taking longer than this is reported as a hang.
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-30}
# cargo fuzz passes -Zsanitizer and friends, which only a nightly compiler accepts; this lets the
# stable toolchain take them.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "INFO: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "INFO: building ${#targets[@]} targets" >&2
cargo fuzz build >&2
# The binaries are run directly, not through `cargo fuzz run`, which rebuilds first: a source
# edit during a long run would otherwise cost a full instrumented rebuild before each target.
triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir="target/$triple/release"

count_files() {
    if [ -d "$1" ]; then
        find "$1" -maxdepth 1 -type f | wc -l
    else
        echo 0
    fi
}

failed=0
results=()
for target in "${targets[@]}"; do
    work="work/$target"
    artifacts="artifacts/$target"
    log="work/$target.log"
    mkdir -p "$work" "$artifacts"
    before=$(count_files "$artifacts")
    echo "INFO: fuzzing $target for ${FUZZ_SECONDS}s" >&2
    status=0
    "$bin_dir/$target" -artifact_prefix="$artifacts/" -max_total_time="$FUZZ_SECONDS" \
        -timeout="$FUZZ_TIMEOUT" -print_final_stats=1 "$work" "corpus/$target" \
        >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    corpus=$(count_files "$work")
    crashes=$(($(count_files "$artifacts") - before))
    if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        failed=1
        echo "WARN: $target failed (exit $status); see fuzz/$log and fuzz/$artifacts" >&2
        tail -n 30 "$log" >&2
    fi
    results+=("$(printf '%-18s %12s %8s %7s %7s' "$target" "${execs:-?}" "${rate:-?}" "$corpus" "$crashes")")
done

printf '%-18s %12s %8s %7s %7s\n' target executions exec/s corpus crashes
printf '%s\n' "${results[@]}"
exit "$failed"
