#!/usr/bin/env bash
# Regenerates the files under deploy/ that are verbatim copies of a single source, because
# kustomize (root-only loading) and Helm (.Files) cannot read outside their own directory:
#
#   CRD        crds/sealedsecrets.bitnami.com.yaml (generated from the Rust types, issue #3)
#              -> deploy/base/crd.yaml, deploy/helm/sealed-secrets/crds/sealedsecrets.bitnami.com.yaml
#   dashboard  deploy/observability/grafana-dashboard.json -> deploy/helm/sealed-secrets/files/
#   alerts     deploy/observability/prometheus-rules.yaml  -> deploy/helm/sealed-secrets/files/
#
# Usage: deploy/sync.sh          rewrite the copies
#        deploy/sync.sh --check  rewrite nothing; print each comparison, exit 1 on any drift
set -euo pipefail
deploy=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$deploy")
chart=$deploy/helm/sealed-secrets
mode=${1:-write}

crd_src=$root/crds/sealedsecrets.bitnami.com.yaml
if [ ! -f "$crd_src" ]; then
  echo "error: $crd_src is missing; regenerate it: cargo run -p sealed-secrets-api --bin crdgen > crds/sealedsecrets.bitnami.com.yaml" >&2
  exit 1
fi

pairs=(
  "$crd_src|$deploy/base/crd.yaml"
  "$crd_src|$chart/crds/sealedsecrets.bitnami.com.yaml"
  "$deploy/observability/grafana-dashboard.json|$chart/files/grafana-dashboard.json"
  "$deploy/observability/prometheus-rules.yaml|$chart/files/prometheus-rules.yaml"
)

drift=0
for pair in "${pairs[@]}"; do
  src=${pair%%|*}
  dst=${pair##*|}
  rel_src=${src#"$root"/}
  rel_dst=${dst#"$root"/}
  if [ "$mode" = "--check" ]; then
    if cmp -s "$src" "$dst"; then
      echo "ok    $rel_dst == $rel_src"
    else
      echo "DRIFT $rel_dst differs from $rel_src (run deploy/sync.sh)"
      diff -u "$src" "$dst" | head -20 || true
      drift=1
    fi
  else
    mkdir -p "$(dirname "$dst")"
    cp "$src" "$dst"
    echo "wrote $rel_dst from $rel_src"
  fi
done
exit "$drift"
