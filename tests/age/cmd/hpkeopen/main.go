// Command hpkeopen opens the mlkem768x25519 stanzas of a sealed-secrets-rs post-quantum value
// with Go's own crypto/hpke (no age code): `hpkeopen SEED_HEX VALUE_FILE`. It parses the age
// header by hand, HPKE-opens each stanza (MLKEM768-X25519, HKDF-SHA256, ChaCha20-Poly1305,
// info "age-encryption.org/mlkem768x25519"), and checks the header MAC with the file key it
// got (HMAC-SHA256 under HKDF-SHA256(file key, "header")). Prints "ok" and exits 0 when one
// stanza opened and the MAC matched.
package main

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "hpkeopen: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 3 {
		fail("usage: hpkeopen SEED_HEX VALUE_FILE")
	}
	seed, err := hex.DecodeString(strings.TrimSpace(os.Args[1]))
	if err != nil {
		fail("seed: %v", err)
	}
	value, err := os.ReadFile(os.Args[2])
	if err != nil {
		fail("%v", err)
	}
	k, err := hpke.MLKEM768X25519().NewPrivateKey(seed)
	if err != nil {
		fail("private key: %v", err)
	}
	b64 := base64.RawStdEncoding.Strict()
	footer := bytes.Index(value, []byte("\n---"))
	if footer < 0 {
		fail("no header MAC line")
	}
	macInput := value[:footer+4]
	rest := string(value[footer+5:])
	macB64, _, _ := strings.Cut(rest, "\n")
	mac, err := b64.DecodeString(macB64)
	if err != nil {
		fail("header MAC: %v", err)
	}
	lines := strings.Split(string(value[:footer]), "\n")
	opened := 0
	for i, line := range lines {
		enc, ok := strings.CutPrefix(line, "-> mlkem768x25519 ")
		if !ok || i+1 >= len(lines) {
			continue
		}
		encBytes, err1 := b64.DecodeString(enc)
		body, err2 := b64.DecodeString(lines[i+1])
		if err1 != nil || err2 != nil {
			fail("stanza %d: bad base64", i)
		}
		r, err := hpke.NewRecipient(encBytes, k, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte("age-encryption.org/mlkem768x25519"))
		if err != nil {
			fail("stanza %d: %v", i, err)
		}
		fileKey, err := r.Open(nil, body)
		if err != nil {
			continue // another recipient's stanza
		}
		macKey, err := hkdf.Key(sha256.New, fileKey, nil, "header", 32)
		if err != nil {
			fail("hkdf: %v", err)
		}
		h := hmac.New(sha256.New, macKey)
		h.Write(macInput)
		if !hmac.Equal(h.Sum(nil), mac) {
			fail("stanza %d opened but the header MAC does not match its file key", i)
		}
		opened++
	}
	if opened == 0 {
		fail("no stanza opened")
	}
	fmt.Println("ok")
}
