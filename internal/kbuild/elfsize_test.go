package kbuild

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestELFSizesCode builds a small Go program with and without its symbol
// table: Code counts the functions' bytes, within the read-only text,
// and is zero when there are no symbols to count.
func TestELFSizesCode(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() { println(\"hi\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		ldflags string
		symbols bool
	}{{"with symbols", "", true}, {"stripped", "-s", false}} {
		out := filepath.Join(dir, "prog-"+c.ldflags)
		cmd := exec.Command(goBin, "build", "-ldflags="+c.ldflags, "-o", out, src)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
		s, err := ELFSizes(out)
		if err != nil {
			t.Fatal(err)
		}
		if c.symbols && (s.Code < 10_000 || s.Code > s.Text) || !c.symbols && s.Code != 0 {
			t.Errorf("%s: %+v; want code between 10 KB and text with symbols, 0 without", c.name, s)
		}
	}
}
