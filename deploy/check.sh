#!/usr/bin/env bash
# CI check of everything under deploy/ (called from .ci/run; also fine to run by hand).
#
# Real tools, none written here: kubectl v1.35 and helm v4 (via .ci/install-kube-tools.sh), the
# JSON schemas of the PyPI package kubernetes-validate (offline, newest Kubernetes version it
# ships, strict mode), Lua 5.4 (Debian package lua5.4) for the Argo CD health script.
#
#   1. drift: generated copies equal their source (CRD, dashboard, alert rules; deploy/sync.sh)
#   2. kubectl kustomize: base, namespaced overlay, observability
#   3. helm lint --strict and helm template: default values, ci/full-values.yaml, upstream-style
#      names with a single replica, upstream's own chart values (helm/tests/upstream_compat.py:
#      every upstream key works or is refused with the reason; the documented migration command
#      renders our image). Upstream's chart is read from the Go module tests/upstream/go.mod
#      pins (tests/upstream/chart-dir.sh): needs Go and the module proxy or a warm module cache.
#      With Go, helm/tests/upgrade-from-upstream.sh also runs that migration on a real
#      kube-apiserver (tests/cluster); skipped, and said so, without Go.
#   4. schema validation of every rendered object (SealedSecret examples against the CRD)
#   5. policy: names, ports, args, probes, security context, RBAC of the rendered installs
#   6. base == default Helm render (same objects), full values reach the objects
#   7. dashboard and alerts use only the controller's metric names
#   8. validators reject broken input (each check can fail)
#   9. Argo CD health.lua on sample SealedSecrets; docs/argocd.md embeds the same script
#  10. Dockerfile builds the workspace's real package names; flags exist in the controller's
#      --help when a built controller binary is present (skipped, and said so, otherwise)
#
# Prints one line per check and ends with "deploy checks: N passed, M failed"; exit 1 if M > 0.
set -uo pipefail
deploy=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$deploy")
chart=$deploy/helm/sealed-secrets
out=$root/target/deploy-check
mkdir -p "$out"
passed=0
failed=0
start=$(date +%s)

# step NAME CMD...: runs CMD, output to $out/log/NAME.log; on failure prints the log.
mkdir -p "$out/log"
step() {
  local name=$1
  shift
  local log=$out/log/$(echo "$name" | tr -c 'a-zA-Z0-9._-' '_').log
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    printf 'ok    %s\n' "$name"
  else
    failed=$((failed + 1))
    printf 'FAIL  %s\n' "$name"
    sed 's/^/      | /' "$log" | grep -v '^      | ok ' | tail -40
  fi
}

# ---- tools -------------------------------------------------------------------------------
bin=$("$root/.ci/install-kube-tools.sh") || { echo "FAIL  installing kubectl/helm"; echo "deploy checks: 0 passed, 1 failed"; exit 1; }
export PATH=$bin:$PATH
if ! python3 -c 'import kubernetes_validate' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate >&2
fi
lua=$(command -v lua5.4 || true)
if [ -z "$lua" ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  { apt-get install -y -q lua5.4 || { apt-get update -q && apt-get install -y -q lua5.4; }; } >"$out/log/apt-lua.log" 2>&1
  lua=$(command -v lua5.4 || true)
fi
echo "tools: $(kubectl version --client 2>/dev/null | head -1), helm $(helm version --template '{{.Version}}'), $(python3 -c 'import kubernetes_validate as k; print("kubernetes-validate", k.__version__)' 2>/dev/null), ${lua:-no lua}"

# ---- 1. drift ----------------------------------------------------------------------------
step "drift: copies equal their sources (deploy/sync.sh --check)" "$deploy/sync.sh" --check

# ---- 2./3. render ------------------------------------------------------------------------
step "kubectl kustomize deploy/base" sh -c "kubectl kustomize '$deploy/base' > '$out/base.yaml'"
step "kubectl kustomize deploy/overlays/namespaced (+ network-policy component)" \
  sh -c "kubectl kustomize '$deploy/overlays/namespaced' > '$out/namespaced.yaml'"
# The kms-wrap component on the base, composed the way an overlay of the operator's would.
kms_wrap_render() {
  mkdir -p "$out/kms-wrap"
  # kustomize takes only relative paths to other kustomizations.
  printf 'resources: [%s]\ncomponents: [%s]\n' "$(realpath --relative-to="$out/kms-wrap" "$deploy/base")" \
    "$(realpath --relative-to="$out/kms-wrap" "$deploy/components/kms-wrap")" >"$out/kms-wrap/kustomization.yaml"
  kubectl kustomize "$out/kms-wrap" >"$out/kms-wrap.yaml" &&
    grep -q -- '--key-wrap-backend=aws-kms' "$out/kms-wrap.yaml" &&
    grep -q 'sealed-secrets-kms-credentials' "$out/kms-wrap.yaml"
}
step "kubectl kustomize deploy/base + components/kms-wrap" kms_wrap_render
mkdir -p "$out/pkcs11-keys"
# kustomize takes relative paths only: base + the component, from a kustomization in $out.
rel=$(realpath --relative-to="$out/pkcs11-keys" "$deploy")
printf 'resources: [%s/base]\ncomponents: [%s/components/pkcs11-keys]\n' "$rel" "$rel" >"$out/pkcs11-keys/kustomization.yaml"
step "kubectl kustomize deploy/base + components/pkcs11-keys" \
  sh -c "kubectl kustomize '$out/pkcs11-keys' > '$out/pkcs11-keys.yaml'"
# The sharded component on the base: 3 replicas with --sharding and the Roles it adds.
sharded_render() {
  mkdir -p "$out/sharded"
  local rel
  rel=$(realpath --relative-to="$out/sharded" "$deploy")
  printf 'resources: [%s/base]\ncomponents: [%s/components/sharded]\n' "$rel" "$rel" >"$out/sharded/kustomization.yaml"
  kubectl kustomize "$out/sharded" >"$out/sharded.yaml" &&
    grep -q -- '- --sharding$' "$out/sharded.yaml" &&
    grep -q 'replicas: 3' "$out/sharded.yaml" &&
    grep -q -- '- patch$' "$out/sharded.yaml" &&
    python3 "$deploy/validate.py" schema "sharded=$out/sharded.yaml"
}
step "kubectl kustomize deploy/base + components/sharded (+ schema)" sharded_render
step "kubectl kustomize deploy/observability" sh -c "kubectl kustomize '$deploy/observability' > '$out/observability.yaml'"
step "helm lint --strict (default values)" helm lint --strict "$chart"
step "helm lint --strict (ci/full-values.yaml)" helm lint --strict "$chart" -f "$chart/ci/full-values.yaml"
step "helm template (default values)" \
  sh -c "helm template sealed-secrets '$chart' --namespace kube-system --include-crds > '$out/helm-default.yaml'"
step "helm template (ci/full-values.yaml)" \
  sh -c "helm template sealed-secrets '$chart' --namespace kube-system --include-crds -f '$chart/ci/full-values.yaml' > '$out/helm-full.yaml'"
step "helm template (upstream-style names, 1 replica, no leader election, no cert ConfigMap)" \
  sh -c "helm template ss '$chart' --namespace sealed-secrets --set fullnameOverride= --set replicaCount=1 --set leaderElection.enabled=false --set certConfigMap= --set pdb.create=false > '$out/helm-upstream-style.yaml'"
edge_renders() {
  local i=0 s
  for s in "createController=false" "rbac.create=false,serviceAccount.create=false" \
    "rbac.clusterRole=false" "additionalNamespaces={a,b}" \
    "rbac.serviceProxier.bind=false,rbac.certReader.create=false" \
    "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; do
    i=$((i + 1))
    echo "== --set $s"
    helm template ss "$chart" --namespace kube-system --set "$s" > "$out/helm-edge-$i.yaml" || return 1
    python3 "$deploy/validate.py" schema "edge-$i=$out/helm-edge-$i.yaml" || return 1
  done
}
step "helm template + schema for 6 edge value sets (no controller, no RBAC, digest, ...)" edge_renders
helm_sharded() {
  helm template ss "$chart" --namespace kube-system --set sharding.enabled=true --set replicaCount=3 \
    >"$out/helm-sharded.yaml" &&
    grep -q -- '- --sharding$' "$out/helm-sharded.yaml" &&
    grep -q 'verbs: \["patch"\]' "$out/helm-sharded.yaml" &&
    grep -q 'verbs: \["get", "list", "update", "delete"\]' "$out/helm-sharded.yaml" &&
    python3 "$deploy/validate.py" schema "helm-sharded=$out/helm-sharded.yaml"
}
step "helm template sharding.enabled=true (--sharding, its RBAC, schema)" helm_sharded
step "helm template refuses sharding without leader election" \
  sh -c "! helm template x '$chart' --set sharding.enabled=true --set replicaCount=1 --set leaderElection.enabled=false >/dev/null 2>&1"
step "helm template refuses replicaCount>1 without leader election" \
  sh -c "! helm template x '$chart' --set replicaCount=2 --set leaderElection.enabled=false >/dev/null 2>&1"
step "helm template refuses an invalid value (values.schema.json)" \
  sh -c "! helm template x '$chart' --set logFormat=xml >/dev/null 2>&1"
step "helm template refuses an unknown top-level key (--set replicaCont=3)" \
  sh -c "! helm template x '$chart' --set replicaCont=3 >/dev/null 2>&1"
# Upstream's own chart comes from the Go module tests/upstream/go.mod pins (never copied here);
# without Go or the module proxy this step fails and says why.
upstream_chart=$(bash "$root/tests/upstream/chart-dir.sh" 2>"$out/log/upstream-chart-dir.log") || upstream_chart=""
upstream_values_render() {
  [ -n "$upstream_chart" ] || { cat "$out/log/upstream-chart-dir.log"; return 1; }
  echo "upstream's chart $(sed -n 's/^version: //p' "$upstream_chart/Chart.yaml"): $upstream_chart"
  helm template sealed-secrets "$chart" --namespace kube-system -f "$upstream_chart/values.yaml" \
    --set image.registry=ghcr.io,image.repository=sealed-secrets-rs/sealed-secrets-controller,image.tag= > "$out/helm-upstream-values.yaml"
}
step "helm template with upstream's chart values (from the Go module in tests/upstream/go.mod) and our image" \
  upstream_values_render
readme_names_values() {
  local readme missing=0 key
  readme=$(helm show readme "$chart") || return 1
  for key in $(grep -oE '^[a-zA-Z]+:' "$chart/values.yaml" | tr -d :); do
    grep -q "\`$key\`" <<<"$readme" || { echo "helm show readme does not name \`$key\`"; missing=1; }
  done
  return $missing
}
step "helm show readme: the chart README names every top-level value" readme_names_values
step "upstream's values: every key works or is refused with why; the documented migration is safe" \
  python3 "$deploy/helm/tests/upstream_compat.py"
# The same migration for real: upstream's chart installed on a real kube-apiserver
# (tests/cluster, ~10 s once its binaries are built; up.sh builds them when missing), then
# upgraded in place with the documented command.
if command -v go >/dev/null; then
  step "helm upgrade of upstream's chart install on a real kube-apiserver (helm/tests/upgrade-from-upstream.sh)" \
    bash "$deploy/helm/tests/upgrade-from-upstream.sh"
else
  echo "SKIP  helm upgrade of upstream's chart install on a real kube-apiserver: no 'go' on PATH (the control plane and upstream's chart come from Go modules)"
fi

# ---- 4.-8. validate ----------------------------------------------------------------------
v="python3 $deploy/validate.py"
# Schema validation must need no network (kubernetes-validate ships its schemas): run it in a
# network namespace without interfaces when the kernel allows it.
offline="" offline_note="network on: no user namespaces here"
if unshare -rn true 2>/dev/null; then offline="unshare -rn" offline_note="network off"; fi
step "schema: every rendered object (strict, newest k8s in kubernetes-validate, $offline_note)" \
  $offline $v schema base="$out/base.yaml" namespaced="$out/namespaced.yaml" observability="$out/observability.yaml" \
  kms-wrap="$out/kms-wrap.yaml" \
  helm-default="$out/helm-default.yaml" helm-full="$out/helm-full.yaml" \
  helm-upstream-style="$out/helm-upstream-style.yaml" helm-upstream-values="$out/helm-upstream-values.yaml" \
  examples="$deploy/examples/sealedsecret.yaml" quota-example="$deploy/examples/resourcequota.yaml"
step "policy: base, namespaced overlay, default Helm render" \
  $v policy base="$out/base.yaml" namespaced="$out/namespaced.yaml" helm-default="$out/helm-default.yaml"
step "same objects: kustomize base vs default Helm render" $v same "$out/base.yaml" "$out/helm-default.yaml"
step "full values reach the rendered objects" $v values "$out/helm-full.yaml"
step "docs/install.md's RBAC table names every RBAC object of base and Helm (and only those)" \
  python3 "$deploy/helm/tests/rbac_names.py" "$out/base.yaml" "$out/helm-default.yaml"
step "observability: dashboard and alerts use known metrics" $v observability "$deploy/observability"
step "validators reject broken objects" $v negative "$out/base.yaml"
echo "      schemas: Kubernetes v$(python3 -c 'from kubernetes_validate import utils; print(utils.latest_version())') (per-object list in ${out#"$root"/}/log/)"

step "release/oci_image.py: reproducible OCI layout, digests and config (release/test_oci_image.py)" \
  python3 "$root/release/test_oci_image.py"

# ---- 9. Argo CD --------------------------------------------------------------------------
if [ -n "$lua" ]; then
  step "argocd health.lua on sample SealedSecrets (lua5.4)" python3 "$deploy/argocd/test-health.py" "$lua"
else
  failed=$((failed + 1))
  echo "FAIL  argocd health.lua: no lua5.4 interpreter (apt-get install lua5.4)"
fi
step "docs/argocd.md embeds deploy/argocd/health.lua verbatim" \
  python3 -c "import sys; sys.exit(open('$deploy/argocd/health.lua').read() not in open('$root/docs/argocd.md').read())"

# ---- 10. image and flags -----------------------------------------------------------------
dockerfile_ok() {
  local f=$root/Dockerfile
  grep -q -- '--locked' "$f" && grep -q '^USER 1001' "$f" && grep -q '^EXPOSE 8080 8081' "$f" &&
    grep -q '^ENTRYPOINT \["/usr/local/bin/sealed-secrets-controller"\]' "$f" &&
    grep -q -- '-p sealed-secrets-controller -p kubeseal' "$f" &&
    grep -q '^name = "sealed-secrets-controller"' "$root/controller/Cargo.toml" &&
    grep -q '^name = "kubeseal"' "$root/cli/Cargo.toml"
}
step "Dockerfile: --locked build of the real packages, USER 1001, EXPOSE 8080 8081, ENTRYPOINT" dockerfile_ok

controller_bin=""
for c in "$root/target/release/sealed-secrets-controller" "$root/target/debug/sealed-secrets-controller"; do
  if [ -x "$c" ]; then controller_bin=$c; break; fi
done
flags_known() {
  local help
  help=$("$controller_bin" --help) || return 1
  local missing=0
  for f in $(cat "$out/base.yaml" "$out/helm-default.yaml" "$out/helm-full.yaml" "$out/namespaced.yaml" "$out/pkcs11-keys.yaml" |
    grep -oE '^ *- "?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+' | sort -u); do
    if grep -q -- "$f" <<<"$help"; then echo "ok $f"; else echo "missing from --help: $f"; missing=1; fi
  done
  return $missing
}
if [ -n "$controller_bin" ]; then
  step "every controller flag in the manifests is in '${controller_bin#"$root"/} --help'" flags_known
else
  echo "SKIP  controller flags vs --help: no built target/{release,debug}/sealed-secrets-controller"
fi

echo "deploy checks: $passed passed, $failed failed ($(($(date +%s) - start))s; renders in ${out#"$root"/})"
[ "$failed" -eq 0 ]
