#!/usr/bin/env bash
# Runs a Sealed Secrets controller as if in a pod, without patching it: upstream's controller
# reads only in-cluster configuration (client-go rest.InClusterConfig): KUBERNETES_SERVICE_HOST
# and KUBERNETES_SERVICE_PORT, and the token, ca.crt and namespace files under
# /var/run/secrets/kubernetes.io/serviceaccount/. This script gives it those in a private mount
# namespace: a tmpfs over /run (/var/run links to it) holding a bind mount of SA_DIR at that path,
# so the host's filesystem is never touched and nothing outlives the process.
#
#   run-controller.sh SA_DIR PROGRAM [ARGS...]
#
# SA_DIR holds `token`, `ca.crt` and `namespace` (what a pod's service-account volume holds);
# KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set (tests/cluster/up.sh writes
# them to DIR/env). PROGRAM is e.g. target/upstream-bin/controller (ours reads the same in-cluster
# configuration when KUBECONFIG is unset). Both listeners must be given on loopback
# (--listen-addr and --listen-metrics-addr, 127.0.0.0/8 or [::1]): the defaults (:8080, :8081)
# would listen on every address of the machine. The process replaces this script (exec, no fork
# of our own), so its pid is the one the caller started and signals reach it directly.
set -euo pipefail

usage() { echo "usage: $0 SA_DIR PROGRAM [ARGS...]" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
sa_dir="$(cd "$1" && pwd)"
program="$2"
shift 2

for f in token ca.crt namespace; do
    [[ -s "$sa_dir/$f" ]] || { echo "error: $sa_dir/$f is missing or empty" >&2; exit 2; }
done
[[ -x "$program" ]] || { echo "error: $program is not an executable file" >&2; exit 2; }
: "${KUBERNETES_SERVICE_HOST:?must be set (see tests/cluster/up.sh DIR/env)}"
: "${KUBERNETES_SERVICE_PORT:?must be set (see tests/cluster/up.sh DIR/env)}"

# Both listeners on loopback, given explicitly.
is_loopback() { [[ "$1" =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+:[0-9]+$ || "$1" =~ ^\[::1\]:[0-9]+$ ]]; }
listen="" metrics=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        --listen-addr=*) listen="${args[i]#*=}" ;;
        --listen-addr) listen="${args[i + 1]:-}" ;;
        --listen-metrics-addr=*) metrics="${args[i]#*=}" ;;
        --listen-metrics-addr) metrics="${args[i + 1]:-}" ;;
    esac
done
for pair in "--listen-addr:$listen" "--listen-metrics-addr:$metrics"; do
    flag="${pair%%:*}" value="${pair#*:}"
    is_loopback "$value" || {
        echo "error: $flag must be given as a loopback HOST:PORT (got '${value}')" >&2
        exit 2
    }
done

sa_path=/run/secrets/kubernetes.io/serviceaccount
exec unshare --mount --propagation private -- /bin/sh -c '
    set -e
    mount -t tmpfs -o mode=0755,size=1m sealed-secrets-run /run
    mkdir -p "$1"
    mount --bind -o ro "$2" "$1"
    shift 2
    exec "$@"
' sh "$sa_path" "$sa_dir" "$program" "$@"
