#!/usr/bin/env bash
# Prints the directory of upstream Sealed Secrets' own Helm chart (helm/sealed-secrets: Chart.yaml,
# values.yaml, templates, crds), taken from the Go module pinned in go.mod beside this script.
#
# Nothing of upstream's repository is committed here: the chart comes with the module that
# build.sh compiles upstream's binaries from, so it is fetched through the Go module proxy (or
# found in Go's module cache), checked against go.sum, and is exactly the release the peer tests
# run. Used by deploy/helm/tests/upstream_compat.py, deploy/helm/tests/upgrade-from-upstream.sh
# and the upstream-peer tests (upstream's RBAC).
#
#   chart-dir.sh      prints e.g. /root/go/pkg/mod/github.com/bitnami-labs/sealed-secrets@v0.40.0/helm/sealed-secrets
#
# Exits 1 with a message on stderr when Go is missing or the module cannot be downloaded.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The path go.mod requires; its replace directive names the path the proxy serves it under.
module=github.com/bitnami/sealed-secrets

command -v go >/dev/null || {
    echo "error: upstream's chart comes from the Go module $module pinned in $here/go.mod, but 'go' is not on PATH" >&2
    echo "hint: install Go $(sed -n "s/^go //p" "$here/go.mod") or newer (CONTRIBUTING.md) and put it on PATH" >&2
    exit 1
}
json="$(cd "$here" && go mod download -json "$module" 2>&1)" || {
    echo "error: 'go mod download -json $module' in $here failed (is the Go module proxy, GOPROXY=$(go env GOPROXY), reachable?):" >&2
    echo "$json" | sed 's/^/  /' >&2
    exit 1
}
dir="$(python3 -c 'import json, sys; print(json.load(sys.stdin).get("Dir", ""))' <<<"$json")"
chart="$dir/helm/sealed-secrets"
[[ -n "$dir" && -f "$chart/Chart.yaml" && -f "$chart/values.yaml" ]] || {
    echo "error: the module $module (go.mod in $here) has no helm/sealed-secrets/Chart.yaml and values.yaml (module directory '${dir}')" >&2
    exit 1
}
echo "$chart"
