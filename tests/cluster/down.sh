#!/usr/bin/env bash
# Stops the control plane that `up.sh DIR` started (with an API server restarted by apiserver.sh:
# its pid file follows the new process): exactly the processes whose pid files are in
# DIR (the controller manager, the API server, etcd, the watchdog, the e2e harness's relays),
# SIGTERM first, SIGKILL after 10 seconds, and the network namespaces listed in DIR/netns/. A
# pid whose process is gone, or now runs something else, is left alone. Logs and data stay in
# DIR.
#
# Usage: bash tests/cluster/down.sh DIR
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
[ -d "$dir" ] || exit 0

# stop NAME EXPECTED: stops the process of DIR/NAME.pid if its command line contains EXPECTED.
stop() {
    local f="$dir/$1.pid" pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    rm -f "$f"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$2" || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        # A zombie child of ours (when the caller is its parent) counts as stopped.
        grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    echo "down.sh: $1 ($pid) did not stop within 10s; killed" >&2
}

# The watchdog runs this script itself when the owner is gone: then it must not be killed.
if [ -f "$dir/watchdog.pid" ] && [ "$(cat "$dir/watchdog.pid")" = "$PPID" ]; then
    rm -f "$dir/watchdog.pid"
fi
stop watchdog up.sh
# Relays of the e2e harness's service-proxy backends (tests/harness/src/control_plane.rs).
for f in "$dir"/relay-*.pid; do
    [ -e "$f" ] || continue
    stop "$(basename "$f" .pid)" e2e-relay
done
stop kube-controller-manager kube-controller-manager
stop kube-apiserver kube-apiserver
stop etcd etcd
# Network namespaces the e2e harness made for service-proxy backends of this control plane
# (recorded in DIR/netns/ before they are made); deleting one deletes its veth pair.
for f in "$dir"/netns/ssrs-*; do
    [ -e "$f" ] || continue
    ip netns del "$(basename "$f")" 2>/dev/null
    rm -f "$f"
done
exit 0
