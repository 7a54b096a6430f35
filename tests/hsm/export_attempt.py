#!/usr/bin/python3
"""Tries to get a private key out of a PKCS#11 token, as an attacker holding the token's PIN
would, through PyKCS11 (a client independent of our Rust code): read the key's secret
attributes, and wrap (export encrypted) the key under an AES key the attacker makes.

    export_attempt.py MODULE TOKEN_LABEL PIN_FILE KEY_LABEL

Prints one JSON object: the key's protection attributes and, per attempt, "refused: <CKR>"
or "EXPORTED <n> bytes". Exit 0 whatever the outcome; the caller judges.
"""
import json
import sys

import PyKCS11
from PyKCS11 import LowLevel

module, token_label, pin_file, key_label = sys.argv[1:5]
lib = PyKCS11.PyKCS11Lib()
lib.load(module)
slot = next(s for s in lib.getSlotList(tokenPresent=True)
            if lib.getTokenInfo(s).label.strip() == token_label)
session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
with open(pin_file) as f:
    session.login(f.read().strip())

[key] = session.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
                             (PyKCS11.CKA_LABEL, key_label)])
result = {}
flags = [PyKCS11.CKA_SENSITIVE, PyKCS11.CKA_EXTRACTABLE,
         PyKCS11.CKA_ALWAYS_SENSITIVE, PyKCS11.CKA_NEVER_EXTRACTABLE, PyKCS11.CKA_TOKEN]
for name, value in zip(["sensitive", "extractable", "always_sensitive", "never_extractable",
                        "token"], session.getAttributeValue(key, flags)):
    result[name] = bool(value)

def attempt(fn):
    try:
        data = fn()
        return "EXPORTED %d bytes" % len(data) if data else "refused: empty"
    except PyKCS11.PyKCS11Error as e:
        return "refused: %s" % PyKCS11.CKR[e.value]

def read(attr):
    return lambda: session.getAttributeValue(key, [attr])[0]

result["read_private_exponent"] = attempt(read(PyKCS11.CKA_PRIVATE_EXPONENT))
result["read_prime_1"] = attempt(read(PyKCS11.CKA_PRIME_1))

# A session AES key the attacker controls, allowed to wrap.
aes = session.generateKey([(PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY),
                           (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_AES),
                           (PyKCS11.CKA_VALUE_LEN, 32),
                           (PyKCS11.CKA_TOKEN, False),
                           (PyKCS11.CKA_WRAP, True),
                           (PyKCS11.CKA_EXTRACTABLE, True)],
                          PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_GEN))
result["wrap_aes_cbc_pad"] = attempt(
    lambda: session.wrapKey(aes, key, PyKCS11.Mechanism(PyKCS11.CKM_AES_CBC_PAD, bytes(16))))
print(json.dumps(result, sort_keys=True))
session.logout()
