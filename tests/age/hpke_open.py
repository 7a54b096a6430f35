"""Opens the mlkem768x25519 stanzas of a sealed-secrets-rs post-quantum value with
pyca/cryptography's HPKE (KEM MLKEM768_X25519, HKDF-SHA256, ChaCha20-Poly1305), no age code:
`python hpke_open.py SEED_HEX VALUE_FILE`. The identity seed is expanded as X-Wing specifies
(SHAKE256(seed) -> 64-byte ML-KEM-768 seed, then the X25519 scalar), the stanza opened, and the
header MAC checked with the file key (HMAC-SHA256 under HKDF-SHA256(file key, "header")).
Prints "ok" when a stanza opened and the MAC matched."""

import base64
import hashlib
import hmac
import sys

from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def b64(s: str) -> bytes:
    raw = base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    if base64.b64encode(raw).decode().rstrip("=") != s:
        raise ValueError("non-canonical base64")
    return raw


def main() -> int:
    seed = bytes.fromhex(sys.argv[1].strip())
    value = open(sys.argv[2], "rb").read()
    expanded = hashlib.shake_256(seed).digest(96)
    key = hpke.MLKEM768X25519PrivateKey(
        mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64]),
        x25519.X25519PrivateKey.from_private_bytes(expanded[64:96]),
    )
    suite = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    footer = value.index(b"\n---")
    mac_input = value[: footer + 4]
    mac = b64(value[footer + 5 :].split(b"\n", 1)[0].decode())
    lines = value[:footer].decode().split("\n")
    opened = 0
    for i, line in enumerate(lines):
        if not line.startswith("-> mlkem768x25519 "):
            continue
        enc = b64(line.split(" ")[2])
        body = b64(lines[i + 1])
        try:
            file_key = suite.decrypt(enc + body, key, info=b"age-encryption.org/mlkem768x25519")
        except Exception:
            continue  # another recipient's stanza
        mac_key = HKDF(hashes.SHA256(), 32, salt=None, info=b"header").derive(file_key)
        if not hmac.compare_digest(hmac.new(mac_key, mac_input, hashlib.sha256).digest(), mac):
            print("stanza opened but the header MAC does not match", file=sys.stderr)
            return 1
        opened += 1
    if not opened:
        print("no stanza opened", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
