#!/usr/bin/env bash
# Side-by-side benchmark of our controller and upstream's, each on a
# fresh private real control plane, same machine, same keys and data. The one documented command:
#
#   bash tests/bench/controllers.sh [N...]        (default N: 1000)
#
# For every N it runs, one control plane each: upstream's controller on the data sets `rr`
# (SealedSecrets x 3 values round-robin over 13 keys, no key hint, as upstream's kubeseal writes
# them) and `newest` (85% on the newest two keys, no hint); ours on `hinted-rr` (round-robin, with
# our kubeseal's hint), `rr` and `newest`. Each run: cold start (every Secret present), controller
# CPU until idle, peak RSS, RSA operations (ours), API requests per SealedSecret (the API server's
# audit log), warm restart; then, with the controller running, the capacity C (a burst of
# creates), create-to-Secret latency at rates derived from C, and fairness between two
# namespaces. Then it prints one markdown table with the goals and upstream ÷ ours ratios
# (docs/benchmarks.md). Figures of every run are kept in $BENCH_RESULTS (default target/bench/results.jsonl; this script starts it afresh unless
# BENCH_APPEND=1, so that runs of several invocations share one table).
#
# Environment:
#   BENCH_CONTROLLERS   controllers to run (default "upstream ours")
#   BENCH_DATA_OURS     data sets for ours (default "hinted-rr rr newest"; add `pq` for every
#                       value post-quantum to the objects' keys' age recipients, round-robin:
#                       its "CPU per value / one RSA decrypt" column is the post-quantum cost)
#   BENCH_DATA_UPSTREAM data sets for upstream (default "rr newest")
#   BENCH_KEY_BACKENDS  where ours keeps its private keys, one run each (default "memory"):
#                       memory, aws-kms (tier 2: key Secrets wrapped by local-kms, converted
#                       with `kubeseal keys wrap`), pkcs11-wrap (tier 2: wrapped by an AES key
#                       in the kryoptic token), pkcs11 (tier 1: the keys imported into the
#                       kryoptic token and adopted, every decryption in the token); the table
#                       compares each with memory
#   BENCH_UPSTREAM_FLAGS  ";"-separated flag sets upstream's controller runs with, one run each
#                       (default ";--kubeclient-qps=-1": its defaults, whose API client is
#                       limited to 5 requests a second, and that limit lifted)
#   BENCH_UPSTREAM_MAX_N  skip upstream above this N (default: no limit)
#   BENCH_LATENCY       create rates of the latency phases, each a rate per second ("10") or a
#                       multiple of the capacity C measured in the run ("0.5C", "C"); default
#                       "0.5C,C,1.5C"; "" skips. After each phase the controller's reconcile
#                       histograms (queue wait, reconcile) say which part is queueing
#   BENCH_LATENCY_SECS  seconds per rate (default 10)
#   BENCH_CAPACITY_N    objects of the capacity burst that measures C (default: about 15 s at
#                       the cold start's rate, 50 to 2,000); 0 skips it (and the phases at
#                       multiples of C)
#   BENCH_FAIRNESS_BURST  creates of the noisy namespace's burst (default 10000; 0 skips);
#                       the quiet namespace creates BENCH_FAIRNESS_RATE a second (default 2),
#                       alone for BENCH_FAIRNESS_ALONE_SECS (default 20), then during the burst
#   BENCH_FAIRNESS_IN_FLIGHT  the burst's creates in flight at once (default 32, as the other
#                       bursts; 1 sends them one after another, as `kubectl apply` does)
#   BENCH_FAIRNESS_CONTROLLERS  controllers the fairness phase runs for (default "ours":
#                       upstream's would take about 20 minutes at 10,000 with its limit lifted)
#   BENCH_SHARDS        >1: after each run of ours, the same data again on a fresh control
#                       plane with this many replicas, each a shard member (--sharding,
#                       distinct POD_NAME, leader election on): every Secret checked, each
#                       replica's peak RSS and CPU against the single replica's (default 1)
#   BENCH_TIMEOUT_SECS  give up on a phase after this long (default 3600)
#   BENCH_TABLE_ONLY=1  only print the table of $BENCH_RESULTS
#   BENCH_OURS_LOG      RUST_LOG of our controller (e.g. `info,sealed_secrets_controller::reconcile::apply=debug`
#                       logs each reconcile's phases: queue, fetch, CPU wait, decrypt, writes);
#                       its log is the `bash-*.log` file in the run's control-plane directory
#   BENCH_OURS_BINARY   run this build of our controller instead of the release build
#                       (e.g. a copy of an earlier commit's, to compare builds)
#   BENCH_PROFILE       cargo profile of everything of ours (default release; `debug` when
#                       a release build does not fit the machine's time or disk: the
#                       controller's CPU figures are then the debug build's, compare runs of
#                       one profile only)
#   BENCH_HEAPTRACK=1   profile our controller's heap with heaptrack (Debian's `heaptrack`
#                       package) on the release binary: one file per controller start
#                       (idle baseline, cold start, warm restart) in target/bench/heaptrack/,
#                       read with `heaptrack_print -f FILE`. RSS and CPU figures of such a
#                       run include heaptrack's own cost: profile and measure in separate runs.
#
# Needs root (the controllers run in private mount namespaces, as the upstream_peers suite) and
# Go 1.25+. It installs what it needs as .ci/test does, so that it runs from a clean clone:
# kubectl and helm (.ci/install-kube-tools.sh into target/kube-tools/bin, unless KUBECTL and
# HELM name them), the real control plane's binaries (tests/cluster/build.sh) and upstream's
# binaries (tests/upstream/build.sh); each returns at once when up to date. Everything of ours
# is built in release mode (unless BENCH_PROFILE says debug). Keys are generated once into
# target/bench/keys and reused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"

export BENCH_RESULTS="${BENCH_RESULTS:-$target/bench/results.jsonl}"
export BENCH_KEYS_DIR="${BENCH_KEYS_DIR:-$target/bench/keys}"
export BENCH_LATENCY="${BENCH_LATENCY-0.5C,C,1.5C}"
export SEALED_SECRETS_E2E_CLUSTER=real
profile="${BENCH_PROFILE:-release}"
case "$profile" in
    release) cargo_profile=(--release) ;;
    debug) cargo_profile=() ;;
    *) echo "error: BENCH_PROFILE must be release or debug, got '$profile'" >&2; exit 2 ;;
esac
export SEALED_SECRETS_E2E_PROFILE=$profile
controllers="${BENCH_CONTROLLERS:-upstream ours}"
data_ours="${BENCH_DATA_OURS:-hinted-rr rr newest}"
data_upstream="${BENCH_DATA_UPSTREAM:-rr newest}"
key_backends="${BENCH_KEY_BACKENDS:-memory}"
shards="${BENCH_SHARDS:-1}"
[[ "$shards" =~ ^[1-9][0-9]*$ ]] || { echo "error: BENCH_SHARDS must be a positive integer, got '$shards'" >&2; exit 2; }
upstream_max="${BENCH_UPSTREAM_MAX_N:-}"
IFS=';' read -r -a upstream_flags <<< "${BENCH_UPSTREAM_FLAGS-;--kubeclient-qps=-1}"
[ ${#upstream_flags[@]} -gt 0 ] || upstream_flags=("")
ns=("$@")
[ ${#ns[@]} -gt 0 ] || ns=(1000)
for n in "${ns[@]}"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "error: N must be a positive integer, got '$n'" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "error: needs root (private mount namespaces for the controllers)" >&2; exit 2; }

run_test() { # TEST-NAME: runs one ignored test of tests/bench/controllers.rs ($BENCH_PROFILE)
    cargo test "${cargo_profile[@]}" -q -p sealed-secrets-benches --test bench_controllers -- \
        --ignored --exact --nocapture "$1"
}

if [ "${BENCH_TABLE_ONLY:-}" != 1 ]; then
    # kubectl and helm (the harness applies deploy/base and upstream's chart RBAC with them).
    if [ -z "${KUBECTL:-}" ] || [ -z "${HELM:-}" ]; then
        kube_tools=$(bash .ci/install-kube-tools.sh "$target/kube-tools/bin")
        export PATH="$kube_tools:$PATH"
        export KUBECTL="${KUBECTL:-$kube_tools/kubectl}" HELM="${HELM:-$kube_tools/helm}"
    fi
    bash tests/cluster/build.sh >&2
    bash tests/upstream/build.sh >&2
    echo "building ($profile) ..." >&2
    cargo build "${cargo_profile[@]}" -q -p sealed-secrets-controller -p kubeseal -p sealed-secrets-harness >&2
    cargo test "${cargo_profile[@]}" -q -p sealed-secrets-benches --test bench_controllers --no-run >&2
    mkdir -p "$(dirname "$BENCH_RESULTS")"
    if [ "${BENCH_HEAPTRACK:-}" = 1 ]; then
        interpret=/usr/lib/heaptrack/libexec/heaptrack_interpret
        preload=/usr/lib/heaptrack/libheaptrack_preload.so
        [ -x "$interpret" ] && [ -f "$preload" ] && command -v zstd >/dev/null || {
            echo "error: BENCH_HEAPTRACK=1 needs heaptrack and zstd (apt-get install heaptrack zstd)" >&2; exit 2; }
        heap_dir="$target/bench/heaptrack"
        mkdir -p "$heap_dir"
        # What the `heaptrack` script does, but with exec: the controller keeps the pid the
        # benchmark measures and stops, and heaptrack's interpreter ends when it exits.
        cat > "$heap_dir/wrap.sh" <<WRAP
#!/bin/sh
set -e
program=\$1; shift
out="$heap_dir/ours.\$(date +%s).\$\$"
mkfifo "\$out.fifo"
"$interpret" < "\$out.fifo" | zstd -q -c > "\$out.zst" &
LD_PRELOAD="$preload" DUMP_HEAPTRACK_OUTPUT="\$out.fifo" exec "\$program" "\$@"
WRAP
        chmod +x "$heap_dir/wrap.sh"
        export BENCH_HEAPTRACK_WRAPPER="$heap_dir/wrap.sh"
        echo "heaptrack: profiles in $heap_dir (heaptrack_print -f FILE)" >&2
    fi
    [ "${BENCH_APPEND:-}" = 1 ] || : > "$BENCH_RESULTS"
    for n in "${ns[@]}"; do
        for c in $controllers; do
            case "$c" in
                ours) sets=$data_ours ;;
                upstream)
                    if [ -n "$upstream_max" ] && [ "$n" -gt "$upstream_max" ]; then
                        echo "skipping upstream at N=$n (BENCH_UPSTREAM_MAX_N=$upstream_max)" >&2
                        continue
                    fi
                    sets=$data_upstream ;;
                *) echo "error: unknown controller '$c' in BENCH_CONTROLLERS (ours, upstream)" >&2; exit 2 ;;
            esac
            flag_sets=("")
            [ "$c" = upstream ] && flag_sets=("${upstream_flags[@]}")
            backends=memory
            [ "$c" = ours ] && backends=$key_backends
            for d in $sets; do
                for flags in "${flag_sets[@]}"; do
                    for b in $backends; do
                        replicas=1
                        [ "$c" = ours ] && [ "$shards" -gt 1 ] && replicas="1 $shards"
                        for r in $replicas; do
                            echo "== $c ${flags:-(defaults)}, $d, keys: $b, N=$n, replicas: $r (load average: $(cut -d' ' -f1-3 /proc/loadavg)) ==" >&2
                            BENCH_UPSTREAM_ARGS=$flags BENCH_CONTROLLER=$c BENCH_DATA=$d BENCH_N=$n \
                                BENCH_KEY_BACKEND=$b BENCH_SHARDS=$r run_test controller_run >&2
                        done
                    done
                done
            done
        done
    done
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
run_test results_table | grep -v -e '^running 1 test' -e '^test result:' -e '^\.$' | cat -s
