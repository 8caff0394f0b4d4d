package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeKernelHost makes a minimal kernel tree and a PATH with gcc, make and
// ld that only print versions, so -n runs without a toolchain.
func fakeKernelHost(t *testing.T) (tree string) {
	t.Helper()
	tree = t.TempDir()
	files := map[string]string{
		"Makefile":         "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\n",
		"Kconfig":          "",
		"arch/x86/Kconfig": "",
	}
	for name, body := range files {
		p := filepath.Join(tree, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := t.TempDir()
	for _, tool := range []string{"gcc", "make", "ld"} {
		script := "#!/bin/sh\necho '" + tool + " 1.0'\n"
		if err := os.WriteFile(filepath.Join(bin, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin)
	t.Setenv("BESPOKE_CACHE", t.TempDir())
	return tree
}

func TestKernelUsage(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	os.WriteFile(cfg, []byte("CONFIG_64BIT=y\n"), 0o644)
	for _, tt := range []struct {
		args []string
		code int
		want string // in stderr
	}{
		{[]string{"kernel"}, 2, "kernel build"},
		{[]string{"kernel", "frob"}, 2, "kernel build"},
		{[]string{"kernel", "build", "-o", dir}, 2, "--config is required"},
		{[]string{"kernel", "build", "--config", cfg}, 2, "-o DIR is required"},
		{[]string{"kernel", "build", "--config", cfg, "-o", dir, "extra"}, 2, "unexpected arguments"},
		{[]string{"kernel", "build", "--config", filepath.Join(dir, "nope"), "-o", dir}, 1, "reading kernel config"},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), tt.args, nil, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("bespoke %q: exit %d, stderr %q; want exit %d and %q", tt.args, code, stderr.String(), tt.code, tt.want)
		}
	}
}

func TestKernelDryRun(t *testing.T) {
	tree := fakeKernelHost(t)
	cfg := filepath.Join(t.TempDir(), "config")
	os.WriteFile(cfg, []byte("CONFIG_64BIT=y\n"), 0o644)
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"kernel", "build", "-n", "--config", cfg, "--kernel-src", tree, "-j", "3", "--make", "KCFLAGS=-g"}, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "mkdir -p ") || !strings.HasSuffix(lines[0], " "+cfg+" "+strings.Fields(lines[0])[2]+"/.config") {
		t.Fatalf("got %d lines, want the copy of the config, 3 make command lines and bespoke's 2 steps around the linker script:\n%s", len(lines), stdout.String())
	}
	lines = lines[1:]
	cache := os.Getenv("BESPOKE_CACHE")
	for i, suffix := range map[int]string{0: " KCFLAGS=-g olddefconfig", 2: " KCFLAGS=-g arch/x86/kernel/vmlinux.lds", 4: " KCFLAGS=-g -j3 bzImage"} {
		if !strings.HasPrefix(lines[i], "make -C "+tree+" O="+cache+"/kbuild/") || !strings.HasSuffix(lines[i], suffix) {
			t.Errorf("line %d = %q, want make -C %s O=%s/kbuild/... ending in %q", i, lines[i], tree, cache, suffix)
		}
	}
	if ents, _ := os.ReadDir(cache); len(ents) != 0 {
		t.Errorf("-n wrote into the cache")
	}
}
