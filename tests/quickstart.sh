#!/usr/bin/env bash
# The main job, end to end, with one command and no cluster:
#   start the loopback Kubernetes API stand-in (kube-standin), install the SealedSecret CRD,
#   start the controller, fetch its certificate with kubeseal, seal tests/fixtures/example-secret.yaml,
#   apply the SealedSecret, wait for the controller to produce the Secret, print it, stop everything.
#
# With KUBECONFIG set it does the same against that cluster (kind, k3d, ...): the controller
# then runs locally against it, and the certificate comes from the controller's own HTTP
# endpoint instead of the API server's service proxy (which would route to in-cluster pods).
#
# Steps whose binaries are not built (cargo build failed or was skipped) are reported as
# SKIPPED. Environment:
#   KUBECONFIG            use this cluster instead of the stand-in
#   KUBECTL               kubectl to use (default: installed by .ci/install-kube-tools.sh)
#   QUICKSTART_NO_BUILD=1 do not run cargo build, use what is in target/debug
#   QUICKSTART_KEEP=1     keep the work directory (kubeconfig, logs) after exit
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin="${CARGO_TARGET_DIR:-$root/target}/debug"
work=$(mktemp -d "${TMPDIR:-/tmp}/sealed-secrets-quickstart.XXXXXX")
pids=()
skipped=()

say() { printf '==> %s\n' "$*" >&2; }
skip() { printf '==> SKIPPED: %s\n' "$*" >&2; skipped+=("$*"); }
die() { printf '==> FAILED: %s\n' "$*" >&2; exit 1; }

cleanup() {
  status=$?
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    for log in "$work"/*.log; do
      [ -s "$log" ] || continue
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

wait_for_port() { # host port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# --- build what exists --------------------------------------------------------------------
build() { # package
  if [ "${QUICKSTART_NO_BUILD:-}" = 1 ]; then return 0; fi
  say "cargo build -p $1"
  cargo build -q -p "$1" >"$work/build-$1.log" 2>&1 || {
    say "building $1 failed (see below); its steps will be skipped"
    tail -n 20 "$work/build-$1.log" >&2
  }
}
build sealed-secrets-e2e
build sealed-secrets-controller
build kubeseal
have() { [ -x "$bin/$1" ]; }

kubectl=${KUBECTL:-}
if [ -z "$kubectl" ]; then
  kubectl="$("$root/.ci/install-kube-tools.sh")/kubectl"
fi
cache="$work/kube-cache"

# --- the cluster ----------------------------------------------------------------------------
ctrl_port=$(free_port)
metrics_port=$(free_port)
ctrl_ns=kube-system
ctrl_name=sealed-secrets-controller
if [ -n "${KUBECONFIG:-}" ]; then
  mode=real
  kubeconfig=$KUBECONFIG
  say "using the cluster of KUBECONFIG=$KUBECONFIG"
else
  mode=standin
  have kube-standin || die "kube-standin is not built (cargo build -p sealed-secrets-e2e)"
  kubeconfig="$work/kubeconfig"
  say "starting kube-standin"
  "$bin/kube-standin" --listen 127.0.0.1:0 --kubeconfig-out "$kubeconfig" \
    --endpoint "$ctrl_ns/$ctrl_name=127.0.0.1:$ctrl_port" >"$work/kube-standin.log" 2>&1 &
  pids+=($!)
  for ((i = 0; i < 300; i++)); do
    [ -s "$kubeconfig" ] && break
    kill -0 "${pids[-1]}" 2>/dev/null || die "kube-standin exited"
    sleep 0.1
  done
  [ -s "$kubeconfig" ] || die "kube-standin did not write $kubeconfig"
fi
export KUBECONFIG=$kubeconfig
k() { "$kubectl" --cache-dir "$cache" "$@"; }

# --- the CRD --------------------------------------------------------------------------------
crd="$root/crds/sealedsecrets.bitnami.com.yaml"
if [ ! -f "$crd" ]; then
  crd="$root/tests/fixtures/sealedsecret-crd.yaml"
  say "crds/ has no CRD yet; using the test fixture $crd"
fi
say "kubectl apply -f ${crd#"$root"/}"
k apply -f "$crd" >&2
k wait --for=condition=Established crd/sealedsecrets.bitnami.com --timeout=30s >&2

if [ "$mode" = standin ]; then
  say "kubectl apply -f tests/fixtures/controller-service.yaml (the controller's Service)"
  k apply -f "$root/tests/fixtures/controller-service.yaml" >&2
fi

# --- the controller -------------------------------------------------------------------------
if ! have sealed-secrets-controller; then
  skip "start the controller (target/debug/sealed-secrets-controller not built)"
else
  say "starting sealed-secrets-controller (HTTP 127.0.0.1:$ctrl_port, namespace $ctrl_ns)"
  POD_NAMESPACE=$ctrl_ns "$bin/sealed-secrets-controller" \
    --listen-addr "127.0.0.1:$ctrl_port" --listen-metrics-addr "127.0.0.1:$metrics_port" \
    >"$work/controller.log" 2>&1 &
  pids+=($!)
  wait_for_port 127.0.0.1 "$ctrl_port" 60 || die "the controller did not listen on 127.0.0.1:$ctrl_port"
fi

# --- seal, apply, wait ----------------------------------------------------------------------
secret_file="$root/tests/fixtures/example-secret.yaml"
secret_name=quickstart-secret
secret_ns=default
if ! have sealed-secrets-controller || ! have kubeseal; then
  if ! have kubeseal; then
    skip "kubeseal --fetch-cert, seal, apply, wait for the Secret (target/debug/kubeseal not built)"
  else
    skip "kubeseal --fetch-cert, seal, apply, wait for the Secret (they need the controller)"
  fi
else
  cert="$work/cert.pem"
  if [ "$mode" = standin ]; then
    say "kubeseal --fetch-cert (through the API server's service proxy)"
    fetched=false
    for ((i = 0; i < 20; i++)); do
      if "$bin/kubeseal" --fetch-cert --controller-namespace "$ctrl_ns" --controller-name "$ctrl_name" \
        >"$cert" 2>"$work/kubeseal.log"; then
        fetched=true
        break
      fi
      sleep 0.5
    done
  else
    say "fetching the certificate from the local controller"
    fetched=false
    for ((i = 0; i < 60; i++)); do
      if "$bin/kubeseal" --fetch-cert --cert "http://127.0.0.1:$ctrl_port/v1/cert.pem" \
        >"$cert" 2>"$work/kubeseal.log"; then
        fetched=true
        break
      fi
      sleep 0.5
    done
  fi
  $fetched || die "kubeseal --fetch-cert failed: $(cat "$work/kubeseal.log")"
  grep -q "BEGIN CERTIFICATE" "$cert" || die "kubeseal --fetch-cert printed no certificate"
  say "certificate: $(head -n 1 "$cert") ... ($(wc -l <"$cert") lines)"

  say "kubeseal: sealing ${secret_file#"$root"/}"
  "$bin/kubeseal" --cert "$cert" --format yaml <"$secret_file" >"$work/sealed.yaml" 2>"$work/kubeseal.log" ||
    die "kubeseal failed: $(cat "$work/kubeseal.log")"
  grep -q "kind: SealedSecret" "$work/sealed.yaml" || die "kubeseal printed no SealedSecret"
  grep -q "s3cr3t-from-the-quickstart" "$work/sealed.yaml" && die "the plaintext leaked into the SealedSecret"

  say "kubectl apply -f sealed.yaml"
  k apply -f "$work/sealed.yaml" >&2
  say "waiting for the controller to produce Secret $secret_ns/$secret_name"
  for ((i = 0; i < 120; i++)); do
    k get secret -n "$secret_ns" "$secret_name" >/dev/null 2>&1 && break
    sleep 0.5
  done
  k get secret -n "$secret_ns" "$secret_name" >/dev/null 2>&1 ||
    die "no Secret $secret_ns/$secret_name after 60s"
  k wait --for=condition=Synced -n "$secret_ns" "sealedsecret/$secret_name" --timeout=30s >&2 ||
    say "the SealedSecret has no Synced=True condition (yet)"

  # The result is the only thing on stdout.
  k get secret -n "$secret_ns" "$secret_name" -o yaml
  password=$(k get secret -n "$secret_ns" "$secret_name" -o jsonpath='{.data.password}' | base64 -d)
  [ "$password" = "s3cr3t-from-the-quickstart" ] || die "the Secret's password does not round-trip"
  say "the Secret's password round-tripped through seal -> controller -> Secret"
  if [ "$mode" = real ]; then
    say "deleting the quickstart SealedSecret from the real cluster"
    k delete -n "$secret_ns" "sealedsecret/$secret_name" --wait=false >&2 || true
  fi
fi

if [ "${#skipped[@]}" -gt 0 ]; then
  say "done, with skipped steps:"
  for s in "${skipped[@]}"; do printf '    - %s\n' "$s" >&2; done
else
  say "done: every step ran"
fi
