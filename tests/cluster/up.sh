#!/usr/bin/env bash
# Starts a real Kubernetes control plane on loopback: etcd, kube-apiserver and
# kube-controller-manager (built by build.sh from tests/cluster/go.mod), in the background.
#
# Usage: bash tests/cluster/up.sh DIR
#
# DIR receives everything: certificates and keys, etcd's data, one log per component
# (etcd.log, kube-apiserver.log, kube-controller-manager.log), one pid file per process
# (*.pid, read by down.sh), the API server's command line (kube-apiserver.sh, for
# apiserver.sh's restarts), and, only once the API server's /readyz answers and the
# controller manager has created the `default` ServiceAccount:
#   DIR/kubeconfig  cluster admin (client certificate in system:masters), self-contained
#   DIR/ca.crt      the CA of the API server's serving certificate (and of client certificates)
#   DIR/env         shell lines: KUBE_APISERVER_HOST, KUBE_APISERVER_PORT, KUBE_APISERVER_URL,
#                   CLUSTER_DIR, CLUSTER_BIN
# Stop it with `bash tests/cluster/down.sh DIR`; restart only the API server (etcd and its data
# stay) with `bash tests/cluster/apiserver.sh DIR restart [SECONDS_DOWN]`.
#
# Environment:
#   CLUSTER_BIN        where the binaries are (default <repo>/target/cluster-bin, built by
#                      build.sh when missing or stale; set CLUSTER_NO_BUILD=1 to only check)
#   CLUSTER_EXTRA_IPS  extra IP SANs for the serving certificate, comma-separated (e.g. the host
#                      end of a veth pair through which a network namespace reaches the API)
#   CLUSTER_OWNER_PID  if set, a watchdog runs down.sh as soon as that process is gone (test
#                      processes set it, so that a crashed test leaves nothing running)
#   CLUSTER_AUDIT_POLICY  if set, an audit policy file; the audit log goes to DIR/audit.log
#
# Ports are chosen at random among free ones in 20000-32767 (below Linux's ephemeral range),
# so several control planes can run at once; a start that loses a port race is retried.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
mkdir -p "$1"
dir=$(cd "$1" && pwd)
bin=${CLUSTER_BIN:-$repo/target/cluster-bin}
t0=$(date +%s.%N)

for f in "$dir"/*.pid; do
    [ -e "$f" ] || continue
    if kill -0 "$(cat "$f")" 2>/dev/null; then
        echo "up.sh: a control plane started in $dir is still running ($(basename "$f")); run down.sh $dir first" >&2
        exit 1
    fi
done

if [ -z "${CLUSTER_NO_BUILD:-}" ]; then
    bash "$here/build.sh" "$bin"
fi
for b in etcd kube-apiserver kube-controller-manager; do
    [ -x "$bin/$b" ] || { echo "up.sh: $bin/$b missing; run tests/cluster/build.sh" >&2; exit 1; }
done
if ! command -v openssl >/dev/null; then
    echo "up.sh: openssl missing, installing it with apt-get" >&2
    apt-get install -y openssl >&2 || { apt-get update >&2 && apt-get install -y openssl >&2; }
fi

rm -f "$dir/kubeconfig" "$dir/env" "$dir/ca.crt"
pki=$dir/pki
mkdir -p "$pki"

# --- certificates --------------------------------------------------------------------------
# One CA signs the serving certificate and the client certificates; a separate key pair signs
# ServiceAccount tokens. EC P-256 keys: fast to make, accepted by every component.
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
# sign NAME SUBJECT EXTENSIONS: NAME.key/NAME.crt signed by the CA.
sign() {
    newkey "$pki/$1.key"
    openssl req -new -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr" 2>/dev/null
    printf '%b\n' "$3" > "$pki/$1.ext"
    openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
        -days 3650 -sha256 -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
}
newkey "$pki/ca.key"
openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=sealed-secrets-rs e2e CA" -days 3650 \
    -sha256 -out "$pki/ca.crt" 2>/dev/null
sans="IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
IFS=',' read -r -a extra_ips <<< "${CLUSTER_EXTRA_IPS:-}"
for ip in "${extra_ips[@]}"; do
    [ -n "$ip" ] && sans="$sans,IP:$ip"
done
sign apiserver "/CN=kube-apiserver" \
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=$sans"
sign admin "/O=system:masters/CN=e2e-admin" \
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth"
newkey "$pki/sa.key"
openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

b64() { base64 -w0 < "$1"; }
# kubeconfig FILE SERVER: a self-contained admin kubeconfig.
kubeconfig() {
    cat > "$1.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: $2
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: e2e-admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
contexts:
- name: e2e
  context:
    cluster: e2e
    user: e2e-admin
current-context: e2e
preferences: {}
EOF
    mv "$1.tmp" "$1"
}

# --- ports ---------------------------------------------------------------------------------
declare -A taken=()
pick_port() {
    local used p
    used=$(ss -Htln 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)
    while :; do
        p=$(( 20000 + RANDOM % 12768 ))
        [ -z "${taken[$p]:-}" ] || continue
        grep -qx "$p" <<< "$used" && continue
        taken[$p]=1
        echo "$p"
        return
    done
}

stop_all() { bash "$here/down.sh" "$dir" >/dev/null 2>&1 || true; }
trap 'stop_all' ERR

# alive NAME: whether the process of NAME.pid still runs.
alive() { kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }
port_race() { grep -q "address already in use" "$dir/$1.log"; }

curl_admin() {
    curl -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$@"
}

started=""
for attempt in 1 2 3; do
    etcd_client=$(pick_port)
    etcd_peer=$(pick_port)
    api_port=$(pick_port)
    rm -rf "$dir/etcd"

    # --unsafe-no-fsync: test data, thrown away; fsync would make every write wait for the disk.
    "$bin/etcd" --name e2e --data-dir "$dir/etcd" \
        --listen-client-urls "http://127.0.0.1:$etcd_client" \
        --advertise-client-urls "http://127.0.0.1:$etcd_client" \
        --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
        --initial-cluster "e2e=http://127.0.0.1:$etcd_peer" \
        --unsafe-no-fsync --log-level warn \
        </dev/null >"$dir/etcd.log" 2>&1 &
    echo $! > "$dir/etcd.pid"

    audit=()
    if [ -n "${CLUSTER_AUDIT_POLICY:-}" ]; then
        audit=(--audit-policy-file "$CLUSTER_AUDIT_POLICY" --audit-log-path "$dir/audit.log"
               --audit-log-format json --audit-log-mode blocking)
    fi
    # Secure port on 127.0.0.1 only; the `kubernetes` Service's endpoints are not reconciled
    # (nothing runs pods here, and a loopback endpoint address is invalid).
    # The command line goes to DIR/kube-apiserver.sh, so that apiserver.sh can restart the API
    # server with the same flags, port and certificates (`exec`: the pid is the server's).
    {
        echo '#!/usr/bin/env bash'
        echo '# Written by tests/cluster/up.sh: the API server of this control plane. Run by up.sh'
        echo '# and by `tests/cluster/apiserver.sh DIR start|restart`.'
        printf 'exec'
        printf ' %q' "$bin/kube-apiserver" \
            --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
            --endpoint-reconciler-type none \
            --etcd-servers "http://127.0.0.1:$etcd_client" \
            --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
            --client-ca-file "$pki/ca.crt" \
            --authorization-mode Node,RBAC \
            --service-account-issuer https://kubernetes.default.svc.cluster.local \
            --service-account-key-file "$pki/sa.pub" \
            --service-account-signing-key-file "$pki/sa.key" \
            --service-cluster-ip-range 10.0.0.0/24 \
            --profiling=false \
            "${audit[@]}"
        echo
    } > "$dir/kube-apiserver.sh"
    bash "$dir/kube-apiserver.sh" </dev/null >"$dir/kube-apiserver.log" 2>&1 &
    echo $! > "$dir/kube-apiserver.pid"

    ok=""
    for _ in $(seq 1 600); do
        if curl_admin "https://127.0.0.1:$api_port/readyz" >/dev/null 2>&1; then ok=1; break; fi
        alive etcd && alive kube-apiserver || break
        sleep 0.1
    done
    if [ -n "$ok" ]; then started=1; break; fi
    stop_all
    if port_race etcd || port_race kube-apiserver; then
        echo "up.sh: lost a port race (attempt $attempt), retrying with other ports" >&2
        continue
    fi
    echo "up.sh: the API server did not become ready; last lines of its logs:" >&2
    tail -n 20 "$dir/etcd.log" "$dir/kube-apiserver.log" >&2
    exit 1
done
[ -n "$started" ] || { echo "up.sh: could not find free ports after 3 attempts" >&2; exit 1; }

server="https://127.0.0.1:$api_port"
kubeconfig "$dir/kcm.kubeconfig" "$server"
# The controllers the suite relies on: garbage collection (ownerReferences), namespace
# deletion, ServiceAccounts and their tokens, the kube-root-ca.crt ConfigMap every namespace
# has, aggregated ClusterRoles (admin/edit/view), Endpoints -> EndpointSlice mirroring, and the
# Endpoints of every Service with a selector (empty here: no pods run), so that the service
# proxy answers 503 "no endpoints available" as on a cluster, not 404.
"$bin/kube-controller-manager" \
    --kubeconfig "$dir/kcm.kubeconfig" \
    --secure-port 0 --leader-elect=false \
    --controllers garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller,clusterrole-aggregation-controller,endpointslice-mirroring-controller,endpoints-controller \
    --root-ca-file "$pki/ca.crt" \
    --service-account-private-key-file "$pki/sa.key" \
    --use-service-account-credentials=false \
    --profiling=false \
    </dev/null >"$dir/kube-controller-manager.log" 2>&1 &
echo $! > "$dir/kube-controller-manager.pid"

# Ready for tests once the controller manager works: the `default` ServiceAccount of the
# `default` namespace exists.
ok=""
for _ in $(seq 1 600); do
    if curl_admin "$server/api/v1/namespaces/default/serviceaccounts/default" >/dev/null 2>&1; then ok=1; break; fi
    alive kube-controller-manager || break
    sleep 0.1
done
if [ -z "$ok" ]; then
    echo "up.sh: kube-controller-manager did not create the default ServiceAccount; last lines of its log:" >&2
    tail -n 20 "$dir/kube-controller-manager.log" >&2
    stop_all
    exit 1
fi

if [ -n "${CLUSTER_OWNER_PID:-}" ]; then
    owner=$CLUSTER_OWNER_PID
    (
        while kill -0 "$owner" 2>/dev/null; do sleep 1; done
        bash "$here/down.sh" "$dir"
    ) </dev/null >>"$dir/watchdog.log" 2>&1 &
    echo $! > "$dir/watchdog.pid"
fi

cp "$pki/ca.crt" "$dir/ca.crt"
cat > "$dir/env.tmp" <<EOF
KUBE_APISERVER_HOST=127.0.0.1
KUBE_APISERVER_PORT=$api_port
KUBE_APISERVER_URL=$server
CLUSTER_DIR=$dir
CLUSTER_BIN=$bin
EOF
mv "$dir/env.tmp" "$dir/env"
kubeconfig "$dir/kubeconfig" "$server"
trap - ERR
echo "up.sh: control plane ready at $server in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s; KUBECONFIG=$dir/kubeconfig" >&2
