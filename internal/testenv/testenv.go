// Package testenv holds the test-tier rules shared by bespoke's tests.
//
// The short tier (go test -short) needs no root, QEMU, kernel source or
// kernel build. The full tier (make test) runs everything; there, a missing
// tool is a test failure that says how to install it, never a skip.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Full skips t in the short tier. Call it first in every test that needs
// root, QEMU, a kernel build or a Debian package beyond the Go toolchain.
func Full(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("full tier: run without -short (make test)")
	}
}

// Command returns the path of name, failing t when it is missing. It
// implies Full.
func Command(t testing.TB, name string) string {
	t.Helper()
	Full(t)
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run 'make deps' (installs the Debian packages the full tier needs)", name)
	}
	return p
}

// File fails t when path does not exist. It implies Full.
func File(t testing.TB, path string) {
	t.Helper()
	Full(t)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s: %v: run 'make deps'", path, err)
	}
}

// Root fails t unless it runs as root. It implies Full.
func Root(t testing.TB) {
	t.Helper()
	Full(t)
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (make test runs as root on the CI machine)")
	}
}

// E2EAllEnv, set to anything, makes the full tier run every example
// (make e2e-all): the tests of the applications beyond make test's.
const E2EAllEnv = "BESPOKE_E2E_ALL"

// E2EAll skips t unless E2EAllEnv is set. It implies Full.
func E2EAll(t testing.TB, what string) {
	t.Helper()
	Full(t)
	if os.Getenv(E2EAllEnv) == "" {
		t.Skipf("%s: make e2e-all (%s=1) runs it", what, E2EAllEnv)
	}
}
