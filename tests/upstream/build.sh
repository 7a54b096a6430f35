#!/usr/bin/env bash
# Builds upstream Sealed Secrets' own `controller` and `kubeseal`, pinned by go.mod/go.sum beside
# this script, into ${CARGO_TARGET_DIR:-target}/upstream-bin. The e2e suite runs them as peers of
# ours (tests/tests/upstream_peers/). Nothing is downloaded but Go modules through the module
# proxy; Go's module and build caches are reused, and the build is skipped when the binaries were
# built from the same go.mod, go.sum and Go version.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${CARGO_TARGET_DIR:-$root/target}/upstream-bin"
mkdir -p "$out"

version="$(cd "$here" && go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' github.com/bitnami/sealed-secrets)"
stamp="$( { cat "$here/go.mod" "$here/go.sum"; go version; } | sha256sum | cut -d' ' -f1)"

if [[ -x "$out/controller" && -x "$out/kubeseal" && -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$stamp" ]]; then
    echo "upstream sealed-secrets $version: up to date in $out" >&2
    exit 0
fi

start=$SECONDS
echo "building upstream sealed-secrets $version into $out" >&2
rm -f "$out/.stamp"
(
    cd "$here"
    # Upstream's Makefile stamps the release into main.VERSION the same way.
    go build -trimpath -ldflags "-X main.VERSION=$version" -o "$out/" \
        github.com/bitnami/sealed-secrets/cmd/controller \
        github.com/bitnami/sealed-secrets/cmd/kubeseal
)
echo "$stamp" > "$out/.stamp"
echo "built upstream sealed-secrets $version in $((SECONDS - start))s" >&2
