#!/usr/bin/env bash
# Writes a kubeconfig for a plain user of the control plane that `up.sh DIR` started: a client
# certificate signed by DIR's CA, with CN=NAME and one O= per GROUP (none: the user is only in
# system:authenticated, i.e. holds exactly what RBAC grants that group and NAME).
#
# Usage: bash tests/cluster/user.sh DIR NAME [GROUP...]   -> prints DIR/users/NAME.kubeconfig
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DIR NAME [GROUP...]" >&2; exit 2; }
dir=$(cd "$1" && pwd)
name=$2
shift 2
pki=$dir/pki
[ -f "$pki/ca.key" ] && [ -f "$dir/env" ] || { echo "user.sh: $dir is not a running control plane (no pki/ca.key or env)" >&2; exit 1; }
# shellcheck disable=SC1091
. "$dir/env"
subj=""
for g in "$@"; do subj="$subj/O=$g"; done
subj="$subj/CN=$name"
out=$dir/users
mkdir -p "$out"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/$name.key" 2>/dev/null
openssl req -new -key "$out/$name.key" -subj "$subj" -out "$out/$name.csr" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' > "$out/$name.ext"
openssl x509 -req -in "$out/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$out/$name.ext" -out "$out/$name.crt" 2>/dev/null
cat > "$out/$name.kubeconfig.tmp" <<EOT
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: $KUBE_APISERVER_URL
    certificate-authority-data: $(base64 -w0 < "$pki/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 < "$out/$name.crt")
    client-key-data: $(base64 -w0 < "$out/$name.key")
contexts:
- name: e2e
  context:
    cluster: e2e
    user: $name
current-context: e2e
preferences: {}
EOT
mv "$out/$name.kubeconfig.tmp" "$out/$name.kubeconfig"
echo "$out/$name.kubeconfig"
