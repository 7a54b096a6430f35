#!/usr/bin/env bash
# The documented migration, for real: installs upstream's own chart on a real kube-apiserver
# (tests/cluster/up.sh), then runs the `helm upgrade` command of docs/migrate-from-upstream.md
# with upstream's values file, and checks that every object was updated in place (immutable
# Deployment selector and RBAC roleRefs accepted), with our image and flags.
#
# Usage: bash deploy/helm/tests/upgrade-from-upstream.sh [UPSTREAM_CHART_DIR]
#   UPSTREAM_CHART_DIR  upstream's chart; default: helm/sealed-secrets of the upstream Go module
#                       tests/upstream/go.mod pins (tests/upstream/chart-dir.sh), so it runs
#                       unattended. Another release: `helm pull sealed-secrets/sealed-secrets --untar`.
# Needs helm and kubectl on PATH, Go, and tests/cluster (Go-built binaries, CLUSTER_BIN).
# deploy/check.sh runs it when Go is available.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
case $# in
0) upstream_chart=$(bash "$root/tests/upstream/chart-dir.sh") || exit 1 ;;
1) [ -f "$1/Chart.yaml" ] || { echo "usage: $0 [UPSTREAM_CHART_DIR] ('$1' has no Chart.yaml)" >&2; exit 2; }
   upstream_chart=$(cd "$1" && pwd) ;;
*) echo "usage: $0 [UPSTREAM_CHART_DIR]" >&2; exit 2 ;;
esac
start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/upgrade-from-upstream.XXXXXX")
cleanup() {
  bash "$root/tests/cluster/down.sh" "$work/cluster" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

CLUSTER_OWNER_PID=$$ bash "$root/tests/cluster/up.sh" "$work/cluster" >&2
export KUBECONFIG=$work/cluster/kubeconfig

echo "== upstream's chart $(sed -n 's/^version: //p' "$upstream_chart/Chart.yaml") as upstream's README installs it" >&2
helm install sealed-secrets "$upstream_chart" --namespace kube-system \
  --set-string fullnameOverride=sealed-secrets-controller >/dev/null
before=$(kubectl get role,rolebinding,clusterrole,clusterrolebinding,deployment,service -A \
  -l app.kubernetes.io/instance=sealed-secrets -o jsonpath='{range .items[*]}{.kind}/{.metadata.name} {.metadata.uid}{"\n"}{end}' | sort)

# The command exactly as docs/migrate-from-upstream.md shows it, with upstream's values file.
cmd=$(python3 - "$root/docs/migrate-from-upstream.md" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
for block in re.findall(r"```sh\n(.*?)```", text, re.S):
    joined = re.sub(r"\\\n\s*", " ", block)
    for line in joined.splitlines():
        if line.startswith("helm upgrade ") and "deploy/helm/sealed-secrets" in line:
            print(line)
            sys.exit(0)
sys.exit("no helm upgrade command in " + sys.argv[1])
PY
)
cp "$upstream_chart/values.yaml" "$work/your-values.yaml"
echo "== $cmd" >&2
(cd "$work" && ln -s "$root/deploy" deploy && eval "$cmd" >/dev/null)

after=$(kubectl get role,rolebinding,clusterrole,clusterrolebinding,deployment,service -A \
  -l app.kubernetes.io/instance=sealed-secrets -o jsonpath='{range .items[*]}{.kind}/{.metadata.name} {.metadata.uid}{"\n"}{end}' | sort)
missing=$(comm -23 <(echo "$before") <(echo "$after"))
[ -z "$missing" ] || { echo "FAIL objects of upstream's install replaced or removed instead of updated in place:" >&2; echo "$missing" >&2; exit 1; }
echo "ok   every object of upstream's install updated in place ($(echo "$before" | wc -l) objects, same uids)"
image=$(kubectl -n kube-system get deployment sealed-secrets-controller -o jsonpath='{.spec.template.spec.containers[0].image}')
case $image in
ghcr.io/sealed-secrets-rs/sealed-secrets-controller:*) echo "ok   the Deployment runs our image ($image)" ;;
*) echo "FAIL the Deployment runs $image" >&2; exit 1 ;;
esac
echo "ok   upgrade-from-upstream: helm upgrade of upstream's chart $(sed -n 's/^version: //p' "$upstream_chart/Chart.yaml") install with the documented command ($(($(date +%s) - start))s)"
