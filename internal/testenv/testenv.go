// Package testenv holds the test-tier rules shared by bespoke's tests.
//
// The short tier (go test -short) needs no root, QEMU, kernel source or
// kernel build. The full tier (make test) runs everything; there, a missing
// tool is a test failure that says how to install it, never a skip.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
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

// CostPlugin returns the cost model's QEMU plugin as make builds it
// (bin/bespoke-cost.so at the repository's top, or $BESPOKE_COST_PLUGIN),
// failing t when it is missing. It implies Full.
func CostPlugin(t testing.TB) string {
	t.Helper()
	Full(t)
	if p := os.Getenv("BESPOKE_COST_PLUGIN"); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	p := filepath.Join(dir, "bin", "bespoke-cost.so")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%v: run 'make deps' (it builds the cost model's QEMU plugin)", err)
	}
	return p
}
