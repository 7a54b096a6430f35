#!/usr/bin/env bash
# Every fuzz target of both fuzz crates (crates/crypto/fuzz, crates/api/fuzz), with one command:
#   1. replays every committed regression input (crates/*/fuzz/regressions/<target>/*), so a
#      bug once found stays fixed;
#   2. fuzzes each target for SECONDS (default 60), one process, starting from its committed
#      seeds (fuzz/seeds/<target>) and the local, uncommitted corpus (fuzz/corpus/<target>);
#   3. prints a table (target, execs, exec/s, new corpus units, findings) on stdout.
# Exits non-zero if any regression input fails or any target finds a crash, timeout, leak or
# out-of-memory; the artifact's path and how to reproduce it are printed on stderr.
#
# Usage: bash tests/fuzz.sh [--smoke] [SECONDS]
#
# Default build: cargo-fuzz's, optimised with AddressSanitizer (and leak detection). --smoke
# (CI's .ci/fuzz-smoke) builds without optimisation and without sanitizer (`--dev -s none`):
# the same coverage-guided libFuzzer runs, panics, hangs and out-of-memory are still caught,
# at a fraction of the cold build time (the optimised builds with one codegen unit are the
# slow part), but fewer executions per second and no leak or address checks.
#
# cargo-fuzz runs on stable with RUSTC_BOOTSTRAP=1 (it needs -Z sanitizer flags); the command
# installs the pinned cargo-fuzz when it is missing. Both fuzz crates build into one target
# dir per build kind, target/fuzz/<kind> (their dependencies, aws-lc among them, are compiled
# once). Full libFuzzer output of each run: target/fuzz-logs/<crate>-<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CARGO_FUZZ_VERSION=0.13.2
FUZZ_CRATES=(crates/crypto crates/api)
# A single input running this long is itself a finding (a hang or an input-controlled blow-up).
PER_INPUT_TIMEOUT=30

build_flags=()
kind=address
if [[ ${1:-} == --smoke ]]; then
    build_flags=(--dev --sanitizer none)
    kind=smoke
    shift
fi
duration=${1:-60}
if [[ $# -gt 1 || ! $duration =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: bash tests/fuzz.sh [--smoke] [SECONDS]  (SECONDS: fuzzing time per target, a" \
        "positive integer; got: ${*:-nothing})" >&2
    exit 2
fi
build_flags+=(--target-dir "$ROOT/target/fuzz/$kind")

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== cargo-fuzz missing: cargo install cargo-fuzz --locked --version $CARGO_FUZZ_VERSION" >&2
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" >&2
fi

logs=$ROOT/target/fuzz-logs
mkdir -p "$logs"

failed=0
rows=()
for crate in "${FUZZ_CRATES[@]}"; do
    name=${crate##*/}
    cd "$ROOT/$crate"
    # A fuzz crate is a workspace of its own and its lock file is not committed: start it from
    # the main workspace's, so that the fuzz builds use the dependency versions the tests ran
    # with (cargo adds libfuzzer-sys and drops what the fuzz crate does not use), not whatever
    # crates.io has newest on the day.
    [[ -e fuzz/Cargo.lock ]] || cp "$ROOT/Cargo.lock" fuzz/Cargo.lock
    mapfile -t targets < <(cargo fuzz list)
    if [[ ${#targets[@]} -eq 0 ]]; then
        echo "error: cargo fuzz list found no target in $crate/fuzz" >&2
        exit 1
    fi

    echo "== $crate/fuzz: building ${targets[*]}" >&2
    start=$(date +%s)
    cargo fuzz build "${build_flags[@]}" >&2
    echo "== $crate/fuzz: built in $(($(date +%s) - start)) s" >&2

    for target in "${targets[@]}"; do
        log=$logs/$name-$target.log

        # Regression inputs: each committed file is run once; any failure fails the command.
        regressions=()
        if [[ -d fuzz/regressions/$target ]]; then
            mapfile -t regressions < <(find "fuzz/regressions/$target" -type f | sort)
        fi
        replay=-
        if [[ ${#regressions[@]} -gt 0 ]]; then
            if cargo fuzz run "${build_flags[@]}" "$target" "${regressions[@]}" -- -timeout=$PER_INPUT_TIMEOUT \
                >"$log.regressions" 2>&1; then
                replay="${#regressions[@]} ok"
            else
                replay="FAILED"
                failed=1
                echo "error: $crate/fuzz/regressions/$target: a committed regression input" \
                    "fails again; output: $log.regressions" >&2
                grep -E '^(==[0-9]+==ERROR|thread .* panicked|Running: )' "$log.regressions" \
                    | head -n 5 >&2 || true
            fi
        fi

        # The fuzzing run. New corpus units go to the first directory (uncommitted corpus/).
        dirs=("fuzz/corpus/$target")
        mkdir -p "fuzz/corpus/$target"
        [[ -d fuzz/seeds/$target ]] && dirs+=("fuzz/seeds/$target")
        echo "== $name/$target: fuzzing for $duration s" >&2
        status=0
        cargo fuzz run "${build_flags[@]}" "$target" "${dirs[@]}" -- \
            -max_total_time="$duration" -timeout=$PER_INPUT_TIMEOUT -print_final_stats=1 \
            >"$log" 2>&1 || status=$?

        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
        new=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)
        if [[ -z $execs ]]; then
            # A crash skips the final stats: take the last status line ("#123 ... exec/s: 45").
            execs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
            rate=$(sed -n 's/^#[0-9].* exec\/s: \([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
        fi
        mapfile -t artifacts < <(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log")
        findings=${#artifacts[@]}
        if [[ $status -ne 0 || $findings -gt 0 ]]; then
            failed=1
            if [[ $findings -eq 0 ]]; then
                findings=ERROR
                echo "error: $name/$target: cargo fuzz exited with $status and wrote no" \
                    "artifact; output: $log" >&2
                tail -n 20 "$log" >&2
            fi
            for artifact in "${artifacts[@]}"; do
                # libFuzzer prints the path as cargo-fuzz gave it: absolute or crate-relative.
                [[ $artifact == /* ]] || artifact=$ROOT/$crate/$artifact
                artifact=${artifact#"$ROOT"/}
                echo "error: $name/$target found a failing input: $artifact" >&2
                echo "  reproduce: cd $crate && RUSTC_BOOTSTRAP=1 cargo fuzz run" \
                    "${build_flags[*]} $target $ROOT/$artifact" >&2
                echo "  once fixed, commit it as a regression input: mkdir -p" \
                    "$crate/fuzz/regressions/$target && cp $artifact $crate/fuzz/regressions/$target/" >&2
            done
            grep -E '^(==[0-9]+==ERROR|thread .* panicked|SUMMARY: )' "$log" | head -n 5 >&2 || true
        fi
        rows+=("$name/$target|${execs:-?}|${rate:-?}|${new:-?}|$findings|$replay")
    done
done

printf '%-24s %12s %8s %6s %9s %12s\n' target execs exec/s new findings regressions
for row in "${rows[@]}"; do
    IFS='|' read -r target execs rate new findings replay <<<"$row"
    printf '%-24s %12s %8s %6s %9s %12s\n' "$target" "$execs" "$rate" "$new" "$findings" "$replay"
done
exit $failed
