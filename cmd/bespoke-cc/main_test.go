package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bespoke-os/bespoke/internal/pgo"
	"github.com/google/go-cmp/cmp"
)

// TestMain lets the test binary be bespoke-cc itself when
// BESPOKE_CC_TEST_MAIN is set, so the tests can run it as make would.
func TestMain(m *testing.M) {
	if os.Getenv("BESPOKE_CC_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestCommand(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "fakecc")
	script := "#!/bin/sh\nfor a; do printf '%s\\n' \"$a\"; done\nexit 4\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(dir, "profile")
	if err := os.Mkdir(prof, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		mode string
		args []string
		want string
	}{
		{"pass-through", "", []string{"-c", "-o", "a.o", "a.c"}, "-c\n-o\na.o\na.c\n"},
		{"probe", pgo.ModePGO, []string{"-E", "-x", "c", "/dev/null"}, "-E\n-x\nc\n/dev/null\n"},
		{"cold", pgo.ModePGO, []string{"-c", "-o", "a.o", "a.c"}, "-c\n-o\na.o\na.c\n-Os\n-falign-functions=1\n-falign-jumps=1\n-falign-loops=1\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tt.args...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "BESPOKE_CC_TEST_MAIN=1", "PWD="+dir,
				pgo.EnvCC+"="+fake, pgo.EnvMode+"="+tt.mode, pgo.EnvProfile+"="+prof)
			out, err := cmd.Output()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 4 {
				t.Errorf("bespoke-cc %v: %v, want exit status 4 (the compiler's)", tt.args, err)
			}
			if diff := cmp.Diff(tt.want, string(out)); diff != "" {
				t.Errorf("compiler arguments (-want +got):\n%s", diff)
			}
		})
	}
}
