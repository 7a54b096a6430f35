#!/usr/bin/env bash
# Runs the controller from the OCI image that release/build.sh made, with podman, on the host
# network, against the cluster of $KUBECONFIG: the proof that the image alone (binary, shared
# libraries, CA roots, user 1001) runs the controller.
#
# Usage: bash release/run-image.sh IMAGE-oci.tar [controller flags...]
#   e.g. KUBECONFIG=kc POD_NAMESPACE=kube-system QUICKSTART_CONTROLLER="bash release/run-image.sh \
#        target/release-artifacts/sealed-secrets-controller-0.1.0-oci.tar" bash tests/quickstart.sh
#
# Needs podman and crun (Debian packages; installed with apt-get when missing and running as
# root). Two workarounds for machines like this project's development VMs, applied only when
# needed, each said on stderr:
#   - cgroups in hybrid mode (v1 controllers plus a cgroup2 hierarchy that holds a controller):
#     crun refuses them. The container then runs in a private mount namespace where
#     /sys/fs/cgroup is a plain cgroup2 mount, with --cgroups=disabled (no resource limits).
#   - podman's default limits (RLIMIT_NOFILE 1048576 ...) cannot be set here: the container
#     gets this shell's open-file limit and 4096 processes (a higher RLIMIT_NPROC is refused
#     here too; the controller runs a few threads).
# The container's stdout/stderr are this script's; SIGTERM or SIGINT stops it and removes it.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 IMAGE-oci.tar [controller flags...]" >&2; exit 2; }
archive=$1
shift
[ -f "$archive" ] || { echo "run-image.sh: $archive does not exist (bash release/build.sh)" >&2; exit 1; }
[ -n "${KUBECONFIG:-}" ] && [ -r "$KUBECONFIG" ] || { echo "run-image.sh: KUBECONFIG must name a readable kubeconfig" >&2; exit 1; }

if ! command -v podman >/dev/null || ! command -v crun >/dev/null; then
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null ||
    { echo "run-image.sh: podman and crun are needed (apt-get install podman crun)" >&2; exit 1; }
  echo "run-image.sh: apt-get install podman crun" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman crun >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman crun >&2; }
fi

# The image's name is the ref.name of the archive's index (release/oci_image.py sets it).
image=$(tar -xOf "$archive" index.json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])')
podman load -q -i "$archive" >&2

# The image runs as uid 1001: give it its own copy of the kubeconfig, owner-only, removed on exit.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/run-image.XXXXXX")
install -m 0600 -o 1001 -g 1001 "$KUBECONFIG" "$tmp/kubeconfig"
child=""
stop() {
  [ -n "$child" ] && kill -TERM "$child" 2>/dev/null && wait "$child" 2>/dev/null
  rm -rf "$tmp"
}
trap 'stop; exit 143' TERM
trap 'stop; exit 130' INT
trap 'rm -rf "$tmp"' EXIT

run=(podman run --rm --network=host --name "sealed-secrets-controller-$$"
  --ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit nproc=4096:4096
  -v "$tmp/kubeconfig:/etc/sealed-secrets/kubeconfig:ro"
  -e KUBECONFIG=/etc/sealed-secrets/kubeconfig
  -e "POD_NAMESPACE=${POD_NAMESPACE:-kube-system}" -e "POD_NAME=${POD_NAME:-sealed-secrets-controller-image}")
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  "${run[@]}" "$image" "$@" &
else
  echo "run-image.sh: hybrid cgroups here: running podman in a private mount namespace with a plain cgroup2 /sys/fs/cgroup and --cgroups=disabled" >&2
  unshare --mount --propagation private -- sh -c \
    'umount -R /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"' sh \
    "${run[0]}" "${run[@]:1:1}" --cgroups=disabled --cgroup-manager=cgroupfs "${run[@]:2}" "$image" "$@" &
fi
child=$!
wait "$child"
