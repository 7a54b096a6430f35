#!/usr/bin/env bash
# Builds the release artefacts of the checked-out commit into target/release-artifacts/:
#
#   kubeseal-<V>-linux-amd64                    kubeseal, release profile
#   sealed-secrets-controller-<V>-linux-amd64   the controller, release profile
#   controller.yaml                             everything to install in one file: deploy/base
#                                               rendered by kustomize, image pinned to <V>
#   sealed-secrets-<V>.tgz                      the Helm chart (helm package), version and
#                                               appVersion <V>
#   sealed-secrets-controller-<V>-oci.tar       OCI image of the controller (OCI layout in one
#                                               tar): the release binaries, the shared libraries
#                                               they link (ldd) and CA roots from this machine's
#                                               Debian packages; no base image is pulled
#   SHA256SUMS                                  sha256sum of every file above
#   BUILD-INFO                                  version, commit, tag, toolchain, packages
#
# <V> is the workspace version (Cargo.toml [workspace.package] version). How versions and tags
# are cut: release/README.md. Needs: cargo, python3, tar, ldd, dpkg-query; kubectl and helm
# come from .ci/install-kube-tools.sh. A release build of both binaries takes a long time on a
# small machine (see release/README.md); nothing here runs in CI.
#
# Usage: bash release/build.sh [--allow-dirty]
#   --allow-dirty  build from a work tree with uncommitted changes (BUILD-INFO says so);
#                  without it a dirty tree is refused, because the artefacts would not match
#                  any commit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

allow_dirty=false
for arg in "$@"; do
  case $arg in
  --allow-dirty) allow_dirty=true ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *)
    printf 'release/build.sh: unknown argument %q (see --help)\n' "$arg" >&2
    exit 2
    ;;
  esac
done

say() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'release/build.sh: %s\n' "$*" >&2
  exit 1
}

target=${CARGO_TARGET_DIR:-$root/target}
out=$target/release-artifacts
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || die "no version in Cargo.toml [workspace.package]"
commit=$(git rev-parse HEAD)
epoch=$(git log -1 --format=%ct HEAD)
tag=$(git tag --points-at HEAD --list "v$version" | head -n 1)
dirty=""
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  $allow_dirty || die "the work tree has uncommitted changes (commit them, or pass --allow-dirty)"
  dirty=" (dirty work tree)"
fi
chart_version=$(sed -n 's/^version: *//p' deploy/helm/sealed-secrets/Chart.yaml)
chart_app=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' deploy/helm/sealed-secrets/Chart.yaml)
[ "$chart_version" = "$version" ] && [ "$chart_app" = "$version" ] ||
  die "deploy/helm/sealed-secrets/Chart.yaml has version $chart_version, appVersion $chart_app; the workspace is $version (release/README.md: bump them together)"
image_repo=ghcr.io/sealed-secrets-rs/sealed-secrets-controller
base_image=$(sed -n 's/^ *image: *//p' deploy/base/deployment.yaml)
[ "$base_image" = "$image_repo:$version" ] ||
  die "deploy/base/deployment.yaml names image $base_image, expected $image_repo:$version"

say "sealed-secrets-rs $version, commit $commit${tag:+, tag $tag}$dirty"
rm -rf "$out"
mkdir -p "$out"
started=$(date +%s)

# --- binaries -------------------------------------------------------------------------------
say "cargo build --release --locked -p sealed-secrets-controller -p kubeseal"
cargo build --release --locked -p sealed-secrets-controller -p kubeseal
say "release build: $(($(date +%s) - started))s"
for b in kubeseal sealed-secrets-controller; do
  install -m 0755 "$target/release/$b" "$out/$b-$version-linux-amd64"
  "$out/$b-$version-linux-amd64" --version >&2 || die "$b --version failed"
done

# --- controller.yaml ------------------------------------------------------------------------
tools=$("$root/.ci/install-kube-tools.sh")
say "controller.yaml: kubectl kustomize deploy/base"
"$tools/kubectl" kustomize deploy/base >"$out/controller.yaml.partial"
grep -q "image: $image_repo:$version\$" "$out/controller.yaml.partial" ||
  die "the rendered controller.yaml does not pin image $image_repo:$version"
{
  printf '# sealed-secrets-rs %s controller (commit %s): kubectl apply -f controller.yaml\n' "$version" "$commit"
  cat "$out/controller.yaml.partial"
} >"$out/controller.yaml"
rm "$out/controller.yaml.partial"

# --- Helm chart -----------------------------------------------------------------------------
say "helm package deploy/helm/sealed-secrets"
"$tools/helm" lint --strict deploy/helm/sealed-secrets >&2
"$tools/helm" package deploy/helm/sealed-secrets --destination "$out" >&2
[ -f "$out/sealed-secrets-$version.tgz" ] || die "helm package wrote no sealed-secrets-$version.tgz"

# --- OCI image ------------------------------------------------------------------------------
say "OCI image: release binaries + the shared libraries they link + CA roots"
rootfs=$(mktemp -d "$target/release-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT
install -D -m 0755 "$target/release/sealed-secrets-controller" "$rootfs/usr/local/bin/sealed-secrets-controller"
install -D -m 0755 "$target/release/kubeseal" "$rootfs/usr/local/bin/kubeseal"
libs=$( { ldd "$target/release/sealed-secrets-controller"; ldd "$target/release/kubeseal"; } |
  awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }' | sort -u)
[ -n "$libs" ] || die "ldd found no shared libraries (a static binary needs no change here, but check)"
packages=()
for lib in $libs; do
  # The library as the loader finds it, at the same path, and the Debian package it comes from.
  install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
  pkg=$(dpkg-query -S "$lib" 2>/dev/null | head -n 1 | cut -d: -f1) ||
    pkg=$(dpkg-query -S "$(readlink -f "$lib")" | head -n 1 | cut -d: -f1)
  packages+=("$pkg")
done
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || die "$ca is missing (apt-get install ca-certificates): kubeseal and the controller read the system CA roots"
install -D -m 0644 "$ca" "$rootfs$ca"
packages+=(ca-certificates)
# The licences of what is shipped: ours and each Debian package's copyright file.
install -D -m 0644 LICENSE "$rootfs/usr/share/doc/sealed-secrets-rs/LICENSE"
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
for pkg in "${packages[@]}"; do
  base=${pkg%%:*}
  [ -f "/usr/share/doc/$base/copyright" ] && install -D -m 0644 "/usr/share/doc/$base/copyright" "$rootfs/usr/share/doc/$base/copyright"
done
dpkg-query -W -f '${Package} ${Version} ${Architecture}\n' "${packages[@]}" >"$rootfs/usr/share/doc/sealed-secrets-rs/debian-packages.txt"
# User 1001 as upstream's image (runAsUser: 1001), and a /tmp for libraries that want one.
mkdir -p "$rootfs/etc" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:1001:1001:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:1001:\n' >"$rootfs/etc/group"
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group"
digest=$(python3 release/oci_image.py "$rootfs" "$out/sealed-secrets-controller-$version-oci.tar" \
  --version "$version" --commit "$commit" --epoch "$epoch" --ref-name "$image_repo:$version" \
  --port 8080 --port 8081)
say "image $image_repo:$version, manifest $digest"

# --- checksums and build info ---------------------------------------------------------------
{
  echo "version: $version"
  echo "commit: $commit$dirty"
  echo "tag: ${tag:-none (release/README.md: tag v$version on this commit to publish)}"
  echo "commit time: $(git log -1 --format=%cI HEAD)"
  echo "rustc: $(rustc --version)"
  echo "image: $image_repo:$version"
  echo "image manifest digest: $digest"
  echo "image contents: /usr/local/bin/{sealed-secrets-controller,kubeseal}, $(echo $libs | tr ' ' ','), $ca, /etc/passwd, /etc/group, /tmp"
  echo "debian packages in the image:"
  sed 's/^/  /' "$rootfs/usr/share/doc/sealed-secrets-rs/debian-packages.txt"
} >"$out/BUILD-INFO"
(cd "$out" && sha256sum kubeseal-* sealed-secrets-controller-* controller.yaml sealed-secrets-*.tgz BUILD-INFO >SHA256SUMS)
say "done in $(($(date +%s) - started))s: $out"
(cd "$out" && ls -l >&2)
