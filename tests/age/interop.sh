#!/usr/bin/env bash
# Post-quantum values against implementations nobody here wrote (crates/crypto/FORMAT.md §3):
#   (a) every value crates/crypto seals (all scopes, empty to multi-chunk, two clusters) opens
#       with the real `age` CLI v1.3.2, built from its Go module (go.mod here pins it), given
#       the identity file our code wrote;
#   (b) each of its mlkem768x25519 stanzas opens with Go's own crypto/hpke (cmd/hpkeopen), and
#       the file key it yields verifies the header MAC;
#   (c) the same with pyca/cryptography's HPKE MLKEM768_X25519 (>= 47, from PyPI, in a venv
#       under target/; hpke_open.py);
#   (d) values sealed by the `age` CLI to our recipient, with the scope stanza added by the
#       age-plugin-sealedscope recipient plugin (cmd/), open with our key ring under their
#       scope, and are refused under another scope or without the binding;
#   (e) the kubeseal CLI end to end: a Secret sealed with `kubeseal --recipients-file` for two
#       clusters opens with `age -d` and each identity file, and a value the age CLI sealed
#       (scope added by the plugin) opens with `kubeseal --recovery-unseal` given the identity.
# Builds into target/age-interop. Needs Go 1.26+ (crypto/hpke), the Go module proxy, python3
# with venv and PyPI (or filled caches). About 10 s warm, 1 minute cold.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=$ROOT/target/age-interop
BIN=$OUT/bin
VALS=$OUT/values
start=$(date +%s)
mkdir -p "$BIN"

echo "== building age v1.3.2, its plugin helper and hpkeopen (Go $(go env GOVERSION))" >&2
(cd tests/age && GOFLAGS=-mod=mod go build -o "$BIN/" filippo.io/age/cmd/age ./cmd/...)
export PATH="$BIN:$PATH"

echo "== building crates/crypto's pq_interop example" >&2
cargo build --locked -q -p sealed-secrets-crypto --example pq_interop
EX=${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples/pq_interop

if ! "$OUT/venv/bin/python" -c 'import cryptography.hazmat.primitives.hpke' 2>/dev/null; then
    echo "== installing pyca/cryptography >= 47 into $OUT/venv" >&2
    python3 -m venv "$OUT/venv"
    "$OUT/venv/bin/pip" install -q "cryptography>=47"
fi
PY=$OUT/venv/bin/python
echo "== pyca/cryptography $("$PY" -c 'import cryptography; print(cryptography.__version__)')" >&2

rm -rf "$VALS"
"$EX" seal "$VALS"

failed=0
fail() {
    echo "FAIL: $*" >&2
    failed=1
}
count=0
for value in "$VALS"/*.age; do
    base=${value%.age}
    count=$((count + 1))
    # (a) the age CLI: byte-identical plaintext with each identity the value was sealed to.
    ids=(1)
    [[ $(basename "$base") == multi ]] && ids=(1 2)
    for n in "${ids[@]}"; do
        if ! age -d -i "$VALS/identity-$n.txt" "$value" | cmp -s - "$base.plain"; then
            fail "age -d -i identity-$n.txt $(basename "$value")"
        fi
        # (b) Go crypto/hpke and (c) pyca/cryptography open the stanza; the MAC verifies.
        hpkeopen "$(cat "$VALS/seed-$n.hex")" "$value" >/dev/null || fail "crypto/hpke: $(basename "$value")"
        "$PY" tests/age/hpke_open.py "$(cat "$VALS/seed-$n.hex")" "$value" >/dev/null ||
            fail "pyca/cryptography: $(basename "$value")"
    done
    # And ours, as a control.
    if ! "$EX" open "$VALS/identity-1.txt" "$(cat "$base.label")" "$value" | cmp -s - "$base.plain"; then
        fail "pq_interop open $(basename "$value")"
    fi
done
# The wrong identity is refused by age too.
if age -d -i "$VALS/identity-2.txt" "$VALS/strict-short.age" >/dev/null 2>&1; then
    fail "age opened a value with an identity it was not sealed to"
fi

# (d) The age CLI seals to our recipient; the plugin adds the scope stanza; ours opens it.
reverse=0
for label in "team-a/db-creds" "team-a" ""; do
    sealed=$VALS/from-age.age
    printf 'sealed by age for [%s]' "$label" |
        age -r "$(cat "$VALS/recipient-1.txt")" -r "$(scoperecipient "$label")" >"$sealed"
    got=$("$EX" open "$VALS/identity-1.txt" "$label" "$sealed") || fail "ours did not open age's value for [$label]"
    [[ $got == "sealed by age for [$label]" ]] || fail "age's value for [$label] opened to [$got]"
    if "$EX" open "$VALS/identity-1.txt" "team-b/moved" "$sealed" >/dev/null 2>&1; then
        fail "age's value for [$label] opened under another scope"
    fi
    reverse=$((reverse + 1))
done
printf 'no binding' | age -r "$(cat "$VALS/recipient-1.txt")" >"$VALS/no-scope.age"
if "$EX" open "$VALS/identity-1.txt" "" "$VALS/no-scope.age" >/dev/null 2>&1; then
    fail "a value without scope binding opened"
fi

# (e) The kubeseal CLI: its output opens with age; age's output opens with kubeseal.
echo "== building kubeseal" >&2
cargo build --locked -q -p kubeseal
KUBESEAL=${CARGO_TARGET_DIR:-$ROOT/target}/debug/kubeseal
secret='{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","namespace":"team-a"},"stringData":{"password":"from kubeseal"}}'
sealed_json=$(printf '%s' "$secret" | "$KUBESEAL" --recipients-file "$VALS/recipient-1.txt" \
    --recipients-file "$VALS/recipient-2.txt" 2>/dev/null) || fail "kubeseal --recipients-file"
value=$(printf '%s' "$sealed_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["spec"]["encryptedData"]["password"])')
for n in 1 2; do
    got=$(printf '%s' "$value" | base64 -d | age -d -i "$VALS/identity-$n.txt") || fail "age -d of kubeseal's value (identity $n)"
    [[ $got == "from kubeseal" ]] || fail "age opened kubeseal's value to [$got]"
done
from_age=$(printf 'sealed by age' | age -r "$(cat "$VALS/recipient-1.txt")" -r "$(scoperecipient team-a/db)" | base64 -w0)
unsealed=$(printf '{"apiVersion":"bitnami.com/v1alpha1","kind":"SealedSecret","metadata":{"name":"db","namespace":"team-a"},"spec":{"encryptedData":{"k":"%s"}}}' "$from_age" |
    "$KUBESEAL" --recovery-unseal --recovery-private-key "$VALS/identity-1.txt") || fail "kubeseal --recovery-unseal of age's value"
[[ $(printf '%s' "$unsealed" | python3 -c 'import json,sys,base64; print(base64.b64decode(json.load(sys.stdin)["data"]["k"]).decode())') == "sealed by age" ]] ||
    fail "kubeseal opened age's value to something else"

if [[ $failed != 0 ]]; then
    exit 1
fi
echo "age interop: $count values sealed by crates/crypto opened with age v1.3.2, Go crypto/hpke and pyca/cryptography; $reverse values sealed by age opened with ours (scope checked) in $(($(date +%s) - start)) s"
