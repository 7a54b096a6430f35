#!/usr/bin/python3
"""Opens a blob wrapped by sealed-secrets-rs's PKCS#11 wrapping backend with PyKCS11, a client
independent of our Rust code: what an operator does in a disaster, with only the token, its
PIN and the blob layout `IV (12) || AES-256-GCM ciphertext || tag (16)` documented in
docs/security.md.

    gcm_open.py MODULE TOKEN_LABEL PIN_FILE KEY_LABEL BLOB_HEX AAD_HEX

Prints the plaintext as hex, or "refused: <CKR>" (exit 0 either way; the caller judges).
"""
import sys

import PyKCS11

module, token_label, pin_file, key_label, blob_hex, aad_hex = sys.argv[1:7]
blob, aad = bytes.fromhex(blob_hex), bytes.fromhex(aad_hex)
lib = PyKCS11.PyKCS11Lib()
lib.load(module)
slot = next(s for s in lib.getSlotList(tokenPresent=True)
            if lib.getTokenInfo(s).label.strip() == token_label)
session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
with open(pin_file) as f:
    session.login(f.read().strip())
[key] = session.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY),
                             (PyKCS11.CKA_LABEL, key_label)])
mechanism = PyKCS11.AES_GCM_Mechanism(list(blob[:12]), list(aad), 128)
try:
    print(bytes(session.decrypt(key, list(blob[12:]), mechanism)).hex())
except PyKCS11.PyKCS11Error as e:
    print("refused: %s" % PyKCS11.CKR[e.value])
