#!/usr/bin/env bash
# Builds the real control plane the e2e suite can run against (etcd, kube-apiserver,
# kube-controller-manager, pinned in tests/cluster/go.mod) into target/cluster-bin/.
#
# Usage: bash tests/cluster/build.sh [OUT_DIR]   (default: <repo>/target/cluster-bin)
#
# Skipped when the binaries exist and were built from the same go.mod, go.sum and Go version
# (a stamp file records them). Otherwise `go build` runs; with Go's module and build caches
# warm (~/go/pkg/mod, ~/.cache/go-build) that is only a relink.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/target/cluster-bin}

command -v go >/dev/null || { echo "build.sh: go not found on PATH (Go 1.25+ is needed)" >&2; exit 1; }

# The version the binaries report (/version, kubectl version): the pinned k8s.io/kubernetes
# release, stamped in as its own release build does (hack/lib/version.sh), instead of the
# unparseable "v0.0.0-master+$Format:%H$" of a plain `go build`.
k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$here/go.mod")
[ -n "$k8s_version" ] || { echo "build.sh: no k8s.io/kubernetes version in $here/go.mod" >&2; exit 1; }
major=${k8s_version#v}; major=${major%%.*}
minor=${k8s_version#v*.}; minor=${minor%%.*}
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

stamp_want=$( { go version; echo "$ldflags"; cat "$here/go.mod" "$here/go.sum"; } | sha256sum | cut -d' ' -f1)
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp_want" ] \
    && [ -x "$out/etcd" ] && [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-controller-manager" ]; then
    echo "build.sh: $out is up to date" >&2
    exit 0
fi

mkdir -p "$out"
start=$(date +%s)
# Build into a scratch directory, then move into place, so that an interrupted build never
# leaves a binary that the stamp would vouch for.
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(
    cd "$here"
    go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
        go.etcd.io/etcd/server/v3 \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager
)
# etcd's main package is named after its module directory.
mv "$tmp/server" "$out/etcd"
mv "$tmp/kube-apiserver" "$tmp/kube-controller-manager" "$out/"
echo "$stamp_want" > "$out/.stamp"
echo "build.sh: built etcd, kube-apiserver, kube-controller-manager into $out in $(( $(date +%s) - start ))s" >&2
