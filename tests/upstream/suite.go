//go:build upstreamsuite

// Package upstream only pins, in go.mod and go.sum, the test-only dependencies of upstream's
// own integration suite (`integration/` of the pinned module, build tag `integration`), which
// integration.sh compiles with `go test -c`: a module's requirements list only what its own
// packages import, and that suite's test files import these two. The build tag keeps this file
// out of every build; `go mod tidy` still sees its imports.
package upstream

import (
	_ "github.com/onsi/ginkgo/v2"
	_ "github.com/onsi/gomega"
)
