// Command scoperecipient prints the age1sealedscope1... recipient that binds a value sealed by
// the stock age CLI to a scope label (see age-plugin-sealedscope): `scoperecipient ns/name`,
// `scoperecipient ns`, or `scoperecipient ""` for cluster-wide.
package main

import (
	"fmt"
	"os"

	"filippo.io/age/plugin"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: scoperecipient LABEL")
		os.Exit(2)
	}
	fmt.Println(plugin.EncodeRecipient("sealedscope", append([]byte("s"), os.Args[1]...)))
}
