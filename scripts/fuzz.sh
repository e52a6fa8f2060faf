#!/usr/bin/env bash
# A bounded, coverage-guided fuzzing run of every fuzz target (fuzz/fuzz_targets/), with
# libFuzzer through the libfuzzer-sys crate on the stable toolchain. See RELIABILITY.md.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [--update-corpus] [TARGET...]
#
# Builds the targets with coverage instrumentation (into fuzz/target, or $FUZZ_TARGET_DIR),
# fuzzes each for SECONDS_PER_TARGET (default 60) from the committed corpus in fuzz/corpus/,
# prints the figures and exits non-zero when a target crashed (the input is kept in
# fuzz/artifacts/TARGET/; replay it with `fuzz/target/<host>/release/TARGET FILE`).
# --update-corpus also reseeds (scripts/fuzz-seed.py) and replaces each committed corpus with the
# at most $FUZZ_CORPUS_CAP (300) inputs of itself, the seeds and the run's finds that cover the
# most edges (the run's own inputs stay in fuzz/target/corpus/TARGET either way).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
update=false
targets=()
for arg in "$@"; do
    case "$arg" in
        --update-corpus) update=true ;;
        [0-9]*) seconds=$arg ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | grep '^#'; exit 0 ;;
        *) targets+=("$arg") ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(definitions decoders)

# What libFuzzer needs: cargo (libfuzzer-sys comes from the registry) and a C++ compiler to build
# libFuzzer itself. Nothing nightly: the instrumentation flags below are all stable.
command -v cargo >/dev/null || { echo "fuzz.sh: cargo not found (https://rustup.rs)" >&2; exit 2; }
if ! command -v "${CXX:-c++}" >/dev/null && ! command -v g++ >/dev/null && ! command -v clang++ >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get install -y g++ >&2
    else
        echo "fuzz.sh: libFuzzer is C++: install g++ or clang++" >&2
        exit 2
    fi
fi

host=$(rustc -vV | sed -n 's/^host: //p')
target_dir=${FUZZ_TARGET_DIR:-fuzz/target}
# As cargo-fuzz instruments (`--sanitizer none`): SanitizerCoverage's 8-bit counters, PC table and
# comparison tracing. `--target` keeps the flags off build scripts (generated/ runs codegen).
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
echo "== building ${targets[*]} (release, debug assertions, overflow checks)" >&2
# The workspace's versions of everything, plus what only the fuzz crate uses (libfuzzer-sys).
cp Cargo.lock fuzz/Cargo.lock
CARGO_TARGET_DIR=$target_dir cargo build --release --manifest-path fuzz/Cargo.toml \
    --target "$host" $(printf -- '--bin %s ' "${targets[@]}") >&2
bin_dir=$target_dir/$host/release

if $update; then
    seeds=$target_dir/seeds
    rm -rf "$seeds"
    python3 scripts/fuzz-seed.py "$seeds" >&2
fi

# Inputs up to the largest seed definition (13 KB), and frames up to 1 KiB: deep enough for every
# nesting limit (the scanner stops at 64 levels, serde_json at 128).
max_len() { case "$1" in definitions) echo 16384 ;; *) echo 1024 ;; esac; }

# Replaces corpus $2 with at most $cap inputs of $2 and the other folders, those that cover the
# most edges (hit counts aside): libFuzzer's set-cover merge lists every input's edges, and
# scripts/fuzz-cap.py picks.
cap=${FUZZ_CORPUS_CAP:-300}
merge_corpus() {
    local t=$1 corpus=$2
    shift 2
    local scratch=$target_dir/merged/$t control=$target_dir/$t.merge.control
    rm -rf "$scratch" "$control" "$scratch.capped" && mkdir -p "$scratch"
    "$bin_dir/$t" -set_cover_merge=1 -use_counters=0 -max_len="$(max_len "$t")" \
        -merge_control_file="$control" "$scratch" "$corpus" "$@" >"$target_dir/$t.merge.log" 2>&1
    echo "corpus $t: $(python3 scripts/fuzz-cap.py "$control" "$cap" "$scratch.capped")" >&2
    rm -rf "$corpus" && mv "$scratch.capped" "$corpus"
}

failed=0
report=()
for t in "${targets[@]}"; do
    corpus=fuzz/corpus/$t
    work=$target_dir/corpus/$t
    artifacts=fuzz/artifacts/$t
    log=$target_dir/$t.log
    mkdir -p "$corpus" "$artifacts"
    rm -rf "$work" && mkdir -p "$work"
    extra=()
    $update && extra+=("$seeds/$t")
    echo "== fuzzing $t for ${seconds}s" >&2
    rc=0
    "$bin_dir/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len="$(max_len "$t")" -print_final_stats=1 -artifact_prefix="$artifacts/" \
        "$work" "$corpus" "${extra[@]}" >"$log" 2>&1 || rc=$?
    grep -E '^#[0-9]+.*(INITED|DONE)|^Done|^stat::|ERROR|panicked|SUMMARY' "$log" >&2 || true
    inited=$(grep -m1 'INITED' "$log" | sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/\1 \2 \3/' || true)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 | sed -E 's/^#([0-9]+).*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/\1 \2 \3 \4/' || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
    read -r _ cov ft corp <<<"${last:-0 0 0 0}"
    read -r cov0 ft0 corp0 <<<"${inited:-0 0 0}"
    crashes=$(find "$artifacts" -type f -newer "$work" | wc -l)
    if [ "$rc" != 0 ] || [ "$crashes" != 0 ]; then
        failed=1
        echo "!! $t failed (exit $rc); inputs in $artifacts/, log in $log" >&2
    fi
    if $update && [ "$rc" = 0 ]; then
        merge_corpus "$t" "$corpus" "${extra[@]}" "$work"
    fi
    report+=("$(printf '%-12s %6ss %10s %8s %9s/%-6s %9s/%-6s %7s/%-7s %6s %5s' "$t" "$seconds" \
        "${execs:-?}" "${rate:-?}" "$cov0" "$cov" "$ft0" "$ft" "$corp0" "$corp" "${rss:-?}" "$crashes")")
done

echo
printf '%-12s %7s %10s %8s %16s %16s %15s %6s %5s\n' target time executions exec/s \
    "cov (start/end)" "ft (start/end)" "corpus" "rss MB" crash
printf '%s\n' "${report[@]}"
for t in "${targets[@]}"; do
    echo "committed corpus fuzz/corpus/$t: $(find "fuzz/corpus/$t" -type f | wc -l) files," \
        "$(find "fuzz/corpus/$t" -type f -exec cat {} + | wc -c) bytes"
done
exit $failed
