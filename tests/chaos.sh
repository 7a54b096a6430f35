#!/usr/bin/env bash
# The chaos suite (tests/tests/chaos): the controller under API faults, SIGKILL, SIGSTOP and
# an API server restart, every scenario ending with the same checks (every value of every
# Secret, foreign Secrets untouched, statuses, key Secrets, one leader at a time). Runs it
# in release on the stand-in, then on the real control plane when tests/cluster/build.sh can
# build it, and prints one table.
#
# Usage: bash tests/chaos.sh [N]      N SealedSecrets (x 3 values) per scenario, default 100
# Environment: CHAOS_BACKENDS="standin real" (the default) to choose backends;
# CHAOS_PROFILE=release (the default) or debug (CI: reuses the test build instead of a
# second, release build of everything). The cargo output of each backend is kept in
# target/chaos/<backend>.log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
n=${1:-${SEALED_SECRETS_CHAOS_N:-100}}
case $n in
    '' | *[!0-9]* | 0) echo "chaos.sh: N must be a positive whole number, got '$n'" >&2; exit 2 ;;
esac
backends=${CHAOS_BACKENDS:-standin real}
# build: what the controller needs. In debug, the selection of `cargo build --workspace --bins`
# (.ci/test's): a -p selection unifies features differently and would compile it all again.
case ${CHAOS_PROFILE:-release} in
    release) profile=(--release) build=(-p sealed-secrets-controller) ;;
    debug) profile=() build=(--workspace --bins) ;;
    *) echo "chaos.sh: CHAOS_PROFILE must be release or debug, got '$CHAOS_PROFILE'" >&2; exit 2 ;;
esac
for b in $backends; do
    case $b in
        standin | real) ;;
        *) echo "chaos.sh: unknown backend '$b' in CHAOS_BACKENDS (expected standin, real)" >&2; exit 2 ;;
    esac
done

cd "$repo"
out=$repo/target/chaos
mkdir -p "$out"
report=$out/report.tsv
: >"$report"

echo "chaos.sh: building (${CHAOS_PROFILE:-release})" >&2
cargo build "${profile[@]}" --quiet "${build[@]}"
cargo test "${profile[@]}" --quiet --workspace --test chaos --no-run

failed=0
run() {
    local backend=$1
    shift
    local log=$out/$backend.log
    echo "chaos.sh: $backend, N=$n (log: ${log#"$repo"/})" >&2
    if ! env SEALED_SECRETS_CHAOS_N="$n" SEALED_SECRETS_CHAOS_REPORT="$report" "$@" \
        cargo test "${profile[@]}" --quiet --workspace --test chaos -- \
        --test-threads=1 --nocapture >"$log" 2>&1; then
        failed=1
        echo "chaos.sh: $backend: FAILED; failing tests:" >&2
        sed -n '/^failures:$/,/^test result/p' "$log" | grep -E '^    [a-z_]+::[a-z_]+$' \
            | sort -u | sed 's/^/  /' >&2 || true
    fi
}

for b in $backends; do
    case $b in
        standin) run stand-in SEALED_SECRETS_E2E_CLUSTER=standin ;;
        real)
            if bash tests/cluster/build.sh >"$out/cluster-build.log" 2>&1; then
                run real SEALED_SECRETS_E2E_CLUSTER=real
            else
                echo "chaos.sh: real control plane skipped: tests/cluster/build.sh failed (see target/chaos/cluster-build.log)" >&2
            fi
            ;;
    esac
done

{
    printf 'scenario\tbackend\tN\twall\tfaults injected\trestarts\tresult\n'
    cat "$report"
} | awk -F'\t' '
    { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } rows = NR; if (NF > cols) cols = NF }
    END { for (r = 1; r <= rows; r++) { line = ""; for (i = 1; i <= cols; i++) line = line sprintf("%-" w[i] "s", cell[r, i]) (i < cols ? "  " : ""); print line } }'
exit "$failed"
