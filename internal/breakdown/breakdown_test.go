package breakdown

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bespoke-os/bespoke/internal/initramfs"
)

func TestSubsystem(t *testing.T) {
	for rel, want := range map[string]string{
		"mm":                  "mm",
		"kernel/sched":        "kernel",
		"net/ipv4":            "net/ipv4",
		"arch/x86/kernel":     "arch/x86",
		"drivers/virtio":      "drivers/virtio",
		"fs":                  "fs",
		".":                   Other,
		"lib/zstd/decompress": "lib",
	} {
		if got := Subsystem(rel); got != want {
			t.Errorf("Subsystem(%q) = %q, want %q", rel, got, want)
		}
	}
}

// TestKernelOf reads testdata/funcs.o (three functions: 4, 40 and 91
// bytes) as a vmlinux, and a copy of it as the only object of a build
// directory: every function maps to that object's directory.
func TestKernelOf(t *testing.T) {
	const obj = "testdata/funcs.o"
	k, err := KernelOf(obj, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []Item{{Name: "large", Bytes: 91}, {Name: "medium", Bytes: 40}, {Name: "small", Bytes: 4}}
	if k.Code != 135 || !slices.Equal(k.Functions, want) || k.Subsystems != nil {
		t.Fatalf("KernelOf without a build dir: code %d, functions %v, subsystems %v; want 135, %v", k.Code, k.Functions, k.Subsystems, want)
	}
	build := t.TempDir()
	b, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	for p, data := range map[string][]byte{
		"net/ipv4/tcp.o": b,
		"junk.o":         []byte("not elf"), // skipped
		"vmlinux.o":      b,                 // the whole kernel: skipped
	} {
		full := filepath.Join(build, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	k, err = KernelOf(obj, build)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(k.Subsystems, []Item{{Name: "net/ipv4", Bytes: 135}}) || k.Mapped != 1 {
		t.Errorf("subsystems %v, mapped %.2f; want all 135 bytes in net/ipv4", k.Subsystems, k.Mapped)
	}
	if _, err := KernelOf(filepath.Join(build, "junk.o"), ""); err == nil {
		t.Error("KernelOf of a file that is not ELF: no error")
	}
}

func TestRootOf(t *testing.T) {
	r := RootOf([]initramfs.FileReport{
		{Path: "/usr/lib/libcrypto.so.3", Kind: "library", Type: "file", Bytes: 4700},
		{Path: "/usr/lib/libc.so.6", Kind: "library", Type: "file", Bytes: 2000},
		{Path: "/usr/bin/redis-server", Kind: "program", Type: "file", Bytes: 3000},
		{Path: "/init", Kind: "init", Type: "file", Bytes: 2700},
		{Path: "/usr/lib", Kind: "dir", Type: "dir"},
		{Path: "/usr/lib/libssl.so", Kind: "library", Type: "symlink"},
	})
	if r.Bytes != 12400 {
		t.Errorf("bytes %d, want 12400", r.Bytes)
	}
	want := []Item{{"library", 6700, 2}, {"program", 3000, 1}, {"init", 2700, 1}}
	if !slices.Equal(r.Kinds, want) {
		t.Errorf("kinds %v, want %v", r.Kinds, want)
	}
	if len(r.Files) != 4 || r.Files[0].Name != "/usr/lib/libcrypto.so.3" {
		t.Errorf("files %v", r.Files)
	}
}

// TestBuildDir: a build dir that is gone gives ""; one whose last build is
// another kernel's is given, and said to be so.
func TestBuildDir(t *testing.T) {
	dir := t.TempDir()
	if d, _ := BuildDir(filepath.Join(dir, "gone"), "k1"); d != "" {
		t.Errorf("a missing dir: %q", d)
	}
	if err := os.WriteFile(filepath.Join(dir, "bespoke-key"), []byte("k1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d, same := BuildDir(dir, "k1"); d != dir || !same {
		t.Errorf("the dir of k1: %q, %v", d, same)
	}
	if d, same := BuildDir(dir, "k2"); d != dir || same {
		t.Errorf("the dir k1 continued: %q, %v; want it, not the same", d, same)
	}
}
