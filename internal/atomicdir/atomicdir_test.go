package atomicdir

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReplace(t *testing.T) {
	for _, existing := range []bool{false, true} {
		out := filepath.Join(t.TempDir(), "img")
		if existing {
			os.MkdirAll(out, 0o755)
			os.WriteFile(filepath.Join(out, "bzImage"), []byte("old"), 0o644)
		}
		staged, err := Stage(out)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(staged, "bzImage"), []byte("new"), 0o644)
		if err := Replace(staged, out); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(filepath.Join(out, "bzImage"))
		if string(got) != "new" {
			t.Errorf("existing=%v: bzImage = %q, want new", existing, got)
		}
		if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
			t.Errorf("existing=%v: %d entries beside the directory, want 1 (no staging or old copy left)", existing, len(ents))
		}
	}
}

func TestReplaceFailureKeepsOld(t *testing.T) {
	out := filepath.Join(t.TempDir(), "img")
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "bzImage"), []byte("old"), 0o644)
	if err := Replace(filepath.Join(t.TempDir(), "missing"), out); err == nil {
		t.Fatal("Replace from a missing directory succeeded")
	}
	if got, _ := os.ReadFile(filepath.Join(out, "bzImage")); string(got) != "old" {
		t.Errorf("after a failed Replace, bzImage = %q, want old", got)
	}
}

func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a")
	os.WriteFile(src, []byte("data"), 0o755)
	if err := CopyFile(src, filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "b"))
	if err != nil || st.Mode().Perm() != 0o755 || st.Size() != 4 {
		t.Errorf("copy: %v, mode %v, size %d; want 0755, 4 bytes", err, st.Mode(), st.Size())
	}
}
