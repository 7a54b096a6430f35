#!/usr/bin/env bash
# Runs upstream Sealed Secrets' own integration suite (`integration/` of the Go module pinned by
# go.mod beside this script; Ginkgo, build tag `integration`) on a fresh real control plane
# (tests/cluster/up.sh), against upstream's own binaries (the control group) and/or ours.
#
#   integration.sh [both|upstream|ours] [--repeat N] [--focus REGEX]
#   integration.sh --build-only
#
# The suite is compiled from the module cache (`go test -c`), never copied into this repository,
# into ${CARGO_TARGET_DIR:-target}/upstream-bin/integration.test; like build.sh, the build is
# skipped when that binary was built from the same go.mod, go.sum and Go version.
#
# Each set of binaries gets a control plane of its own, set up by the e2e test
# tests/tests/upstream_suite/ (deploy/base, upstream's RBAC, the controller run with in-cluster
# configuration, the service proxy routed to it; needs root), which runs the suite, prints
# Ginkgo's output and summary, checks the outcome and stops everything it started.
#
# A full run must fail exactly the specs of suite-known-failures-ours.txt with ours (none with
# upstream's) and skips, by name, the racy specs of suite-racy.txt (their measured failure rates
# are written there); anything else fails. --focus runs only the matching specs (nothing
# skipped) and prints how often each failed: `--focus 'should not recreate' --repeat 50`
# measures the racy ones. --repeat runs the suite N times on the same control plane.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${CARGO_TARGET_DIR:-$root/target}/upstream-bin"
suite="$out/integration.test"

usage() {
    echo "usage: $0 [both|upstream|ours] [--repeat N] [--focus REGEX] | --build-only" >&2
    exit 2
}

which=both repeat=1 focus="" build_only=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        both | upstream | ours) which=$1 ;;
        --repeat) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || usage; repeat=$2; shift ;;
        --focus) [[ $# -ge 2 && -n "$2" ]] || usage; focus=$2; shift ;;
        --build-only) build_only=1 ;;
        *) usage ;;
    esac
    shift
done

build_suite() {
    mkdir -p "$out"
    local stamp
    stamp="$( { cat "$here/go.mod" "$here/go.sum"; go version; } | sha256sum | cut -d' ' -f1)"
    if [[ -x "$suite" && -f "$suite.stamp" && "$(cat "$suite.stamp")" == "$stamp" ]]; then
        echo "upstream integration suite: up to date in $suite" >&2
        return
    fi
    local start=$SECONDS
    echo "building upstream's integration suite into $suite" >&2
    rm -f "$suite.stamp"
    (cd "$here" && go test -c -trimpath -tags integration -o "$suite" \
        github.com/bitnami/sealed-secrets/integration)
    echo "$stamp" > "$suite.stamp"
    echo "built upstream's integration suite in $((SECONDS - start))s" >&2
}

build_suite
[[ -n "$build_only" ]] && exit 0

bash "$root/tests/cluster/build.sh"
bash "$here/build.sh"
# --workspace, as .ci/test builds: a -p selection would compile everything again with other features.
(cd "$root" && cargo build --locked --workspace --bins)

case "$which" in
    both) tests=(upstream_suite_against_upstream upstream_suite_against_ours) ;;
    *) tests=("upstream_suite_against_$which") ;;
esac
status=0
for t in "${tests[@]}"; do
    echo "== upstream's integration suite: $t" >&2
    # One test at a time, each with a control plane of its own; --nocapture: Ginkgo's output
    # and the measured rates are the point of the run.
    (cd "$root" && SEALED_SECRETS_E2E_CLUSTER=real UPSTREAM_SUITE_BIN="$suite" \
        UPSTREAM_SUITE_REPEAT="$repeat" UPSTREAM_SUITE_FOCUS="$focus" \
        cargo test --locked --workspace --test upstream_suite -- \
        --exact "$t" --nocapture --test-threads 1) || status=1
done
exit $status
