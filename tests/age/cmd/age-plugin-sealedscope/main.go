// Command age-plugin-sealedscope lets the stock age CLI write the scope stanza of
// sealed-secrets-rs's post-quantum values (crates/crypto/FORMAT.md §3.2, §3.4):
//
//	age -r age1pq1... -r "$(scoperecipient ns/name)" < value > value.age
//
// age runs it as a recipient plugin for `age1sealedscope1...` recipients. It wraps nothing: its
// one stanza, `sealed-secrets-rs.dev/scope` with the scope label as body, carries no key, and
// age's header MAC (computed by age itself) authenticates it. It reports the "postquantum"
// label so that age lets it stand beside mlkem768x25519 recipients.
package main

import (
	"errors"
	"os"

	"filippo.io/age"
	"filippo.io/age/plugin"
)

type scope struct{ label []byte }

func (s scope) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	st, _, err := s.WrapWithLabels(fileKey)
	return st, err
}

func (s scope) WrapWithLabels([]byte) ([]*age.Stanza, []string, error) {
	return []*age.Stanza{{Type: "sealed-secrets-rs.dev/scope", Body: s.label}}, []string{"postquantum"}, nil
}

func main() {
	p, err := plugin.New("sealedscope")
	if err != nil {
		os.Exit(1)
	}
	p.HandleRecipient(func(data []byte) (age.Recipient, error) {
		// The recipient's data is "s" followed by the label, so that the cluster-wide
		// (empty) label still has a non-empty Bech32 payload.
		if len(data) == 0 || data[0] != 's' {
			return nil, errors.New("not a sealed-secrets-rs scope recipient")
		}
		return scope{label: data[1:]}, nil
	})
	os.Exit(p.Main())
}
