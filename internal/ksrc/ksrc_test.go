package ksrc

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTree writes the few files that make a directory look like a kernel tree.
func fakeTree(t *testing.T, dir string) {
	t.Helper()
	for name, body := range map[string]string{
		"Makefile":         "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\n",
		"Kconfig":          "mainmenu \"test\"\n",
		"arch/x86/Kconfig": "config X86\n\tdef_bool y\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPrepareDirectory(t *testing.T) {
	dir := t.TempDir()
	fakeTree(t, dir)
	tr, err := Prepare(context.Background(), dir, t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Dir != dir || tr.Version != "6.12.117" {
		t.Errorf("got dir %q version %q, want %q 6.12.117", tr.Dir, tr.Version, dir)
	}
}

func TestPrepareTarball(t *testing.T) {
	src := t.TempDir()
	fakeTree(t, filepath.Join(src, "linux-source-6.12"))
	tarball := filepath.Join(t.TempDir(), "linux.tar.gz")
	if out, err := exec.Command("tar", "-czf", tarball, "-C", src, "linux-source-6.12").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	cache := t.TempDir()
	tr, err := Prepare(context.Background(), tarball, cache, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tr.Dir, cache) || tr.Version != "6.12.117" {
		t.Errorf("got %+v, want a 6.12.117 tree under %s", tr, cache)
	}
	// The second call reuses the unpacked tree.
	tr2, err := Prepare(context.Background(), tarball, cache, io.Discard)
	if err != nil || tr2.Dir != tr.Dir {
		t.Errorf("second Prepare: %v, dir %q, want %q", err, tr2.Dir, tr.Dir)
	}
}

func TestPrepareBadSources(t *testing.T) {
	cache := t.TempDir()
	_, err := Prepare(context.Background(), filepath.Join(t.TempDir(), "missing.tar.xz"), cache, io.Discard)
	if !errors.Is(err, ErrNoSource) {
		t.Errorf("missing tarball: got %v, want ErrNoSource", err)
	}
	corrupt := filepath.Join(t.TempDir(), "corrupt.tar.xz")
	os.WriteFile(corrupt, []byte("this is not xz data"), 0o644)
	_, err = Prepare(context.Background(), corrupt, cache, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "unpacking kernel source") {
		t.Errorf("corrupt tarball: got %v, want an unpacking error", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(cache, "src")); len(ents) != 0 {
		t.Errorf("corrupt tarball left %d entries in the cache", len(ents))
	}
	_, err = Prepare(context.Background(), t.TempDir(), cache, io.Discard)
	if err == nil {
		t.Error("empty directory accepted as a kernel tree")
	}
}

// TestSourceID: the ID changes whenever the source does, not only its
// Makefile (two trees with the same Makefile and another init/main.c
// shared a cache key).
func TestSourceID(t *testing.T) {
	ctx := context.Background()
	cache := t.TempDir()
	tarball := func(mainC string) string {
		src := t.TempDir()
		top := filepath.Join(src, "linux-source-6.12")
		fakeTree(t, top)
		os.MkdirAll(filepath.Join(top, "init"), 0o755)
		if err := os.WriteFile(filepath.Join(top, "init", "main.c"), []byte(mainC), 0o644); err != nil {
			t.Fatal(err)
		}
		tb := filepath.Join(t.TempDir(), "linux-source-6.12.tar.gz")
		if out, err := exec.Command("tar", "-czf", tb, "-C", src, "linux-source-6.12").CombinedOutput(); err != nil {
			t.Fatalf("tar: %v %s", err, out)
		}
		return tb
	}
	a, b := tarball("int main;\n"), tarball("int main2;\n")
	ta, err := Prepare(ctx, a, cache, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Prepare(ctx, b, cache, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if ta.ID == tb.ID {
		t.Errorf("two tarballs differing in init/main.c: same ID %s", ta.ID)
	}
	// The same tarball again: the same ID, from the record.
	if again, err := Prepare(ctx, a, cache, io.Discard); err != nil || again.ID != ta.ID {
		t.Errorf("second Prepare of a tarball: %v, ID %s, want %s", err, again.ID, ta.ID)
	}
	// A tarball rewritten in place with other content and its old
	// modification time is unpacked again, with another ID.
	fi, _ := os.Stat(a)
	data, _ := os.ReadFile(b)
	if err := os.WriteFile(a, data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(a, fi.ModTime(), fi.ModTime())
	if re, err := Prepare(ctx, a, cache, io.Discard); err != nil || re.ID != tb.ID {
		t.Errorf("tarball rewritten in place: %v, ID %s, want %s (its new content's)", err, re.ID, tb.ID)
	}

	// A directory: an edit of any file changes the ID; nothing else does.
	dir := t.TempDir()
	fakeTree(t, dir)
	mainC := filepath.Join(dir, "init", "main.c")
	os.MkdirAll(filepath.Dir(mainC), 0o755)
	os.WriteFile(mainC, []byte("int main;\n"), 0o644)
	d1, err := Prepare(ctx, dir, cache, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if d2, _ := Prepare(ctx, dir, cache, io.Discard); d2.ID != d1.ID {
		t.Errorf("an unchanged directory: ID %s, then %s", d1.ID, d2.ID)
	}
	if err := os.WriteFile(mainC, []byte("int mainX;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d3, _ := Prepare(ctx, dir, cache, io.Discard); d3.ID == d1.ID {
		t.Errorf("init/main.c edited: the ID stayed %s", d1.ID)
	}
}
