#!/usr/bin/env bash
# Stops, starts or restarts only the API server of the control plane that `up.sh DIR` started:
# etcd (and so every object), the controller manager and the certificates stay. The server
# comes back with the same flags, port and certificates (DIR/kube-apiserver.sh, written by
# up.sh), its log appended to DIR/kube-apiserver.log. For chaos tests: clients see the API
# server go away and come back.
#
# Usage: bash tests/cluster/apiserver.sh DIR stop
#        bash tests/cluster/apiserver.sh DIR start
#        bash tests/cluster/apiserver.sh DIR restart [SECONDS_DOWN]   (default 0; fractions ok)
#
# stop: SIGTERM, then SIGKILL after CLUSTER_APISERVER_STOP_GRACE seconds (default 5); returns
#   once the process is gone. On SIGTERM kube-apiserver stops listening at once but keeps
#   serving the watches already open (the controller manager's, any test client's) for up to
#   its request timeout, 60 s; the grace ends them sooner, as a crash would.
# start: returns once /readyz answers (at most 60 seconds), else fails with the log's tail.
set -euo pipefail
[ $# -ge 2 ] && [ $# -le 3 ] || { echo "usage: $0 DIR stop|start|restart [SECONDS_DOWN]" >&2; exit 2; }
dir=$(cd "$1" && pwd)
action=$2
down_for=${3:-0}
script=$dir/kube-apiserver.sh
pidfile=$dir/kube-apiserver.pid
pki=$dir/pki
grace=${CLUSTER_APISERVER_STOP_GRACE:-5}

[ -f "$script" ] || { echo "apiserver.sh: $script missing: not a control plane started by up.sh (or by an older up.sh)" >&2; exit 1; }
[[ "$down_for" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "apiserver.sh: SECONDS_DOWN must be a number of seconds, got '$down_for'" >&2; exit 2; }
[[ "$grace" =~ ^[0-9]+$ ]] || { echo "apiserver.sh: CLUSTER_APISERVER_STOP_GRACE must be whole seconds, got '$grace'" >&2; exit 2; }

# The pid of the running API server of DIR, or nothing.
running_pid() {
    local pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
    grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && return 0
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- kube-apiserver || return 0
    echo "$pid"
}

stop() {
    local pid
    pid=$(running_pid)
    if [ -z "$pid" ]; then
        echo "apiserver.sh: no API server of $dir is running" >&2
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $(( grace * 10 ))); do
        [ -n "$(running_pid)" ] || { rm -f "$pidfile"; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        [ -n "$(running_pid)" ] || break
        sleep 0.1
    done
    if [ -n "$(running_pid)" ]; then
        echo "apiserver.sh: the API server ($pid) survived SIGKILL" >&2
        exit 1
    fi
    rm -f "$pidfile"
    echo "apiserver.sh: the API server ($pid) still served open watches ${grace}s after SIGTERM; killed" >> "$dir/kube-apiserver.log"
}

start() {
    local pid port
    pid=$(running_pid)
    if [ -n "$pid" ]; then
        echo "apiserver.sh: the API server of $dir is already running ($pid)" >&2
        exit 1
    fi
    port=$(grep -o -- '--secure-port [0-9]*' "$script" | awk '{print $2}')
    echo "apiserver.sh: starting the API server again ($(date -u +%FT%TZ))" >> "$dir/kube-apiserver.log"
    bash "$script" </dev/null >>"$dir/kube-apiserver.log" 2>&1 &
    pid=$!
    echo "$pid" > "$pidfile"
    for _ in $(seq 1 600); do
        if curl -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
            "https://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$pidfile"
            if grep -q "address already in use" <(tail -n 50 "$dir/kube-apiserver.log"); then
                echo "apiserver.sh: port $port was taken by another process while the API server was down" >&2
            else
                echo "apiserver.sh: the API server exited at start; last lines of its log:" >&2
                tail -n 20 "$dir/kube-apiserver.log" >&2
            fi
            exit 1
        fi
        sleep 0.1
    done
    echo "apiserver.sh: the API server did not become ready within 60s; last lines of its log:" >&2
    tail -n 20 "$dir/kube-apiserver.log" >&2
    exit 1
}

case $action in
    stop) stop ;;
    start) start ;;
    restart)
        stop
        sleep "$down_for"
        start
        ;;
    *) echo "usage: $0 DIR stop|start|restart [SECONDS_DOWN]" >&2; exit 2 ;;
esac
