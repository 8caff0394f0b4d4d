package image

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCommitDirReplacesImage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "img")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(out, "bzImage"), []byte("old"), 0o644)
	staged, err := stagingDir(out)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(staged, "bzImage"), []byte("new"), 0o644)
	if err := commitDir(staged, out); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(out, "bzImage"))
	if string(got) != "new" {
		t.Errorf("bzImage = %q, want new", got)
	}
	ents, _ := os.ReadDir(filepath.Dir(out))
	if len(ents) != 1 {
		t.Errorf("%d entries beside the image, want 1 (no staging or .old left)", len(ents))
	}
}
