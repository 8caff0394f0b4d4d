package image

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestUnpackProfile(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range map[string]string{
		"root/.cache/bespoke/kbuild/work-ab.0/kernel/sched/core.gcda": "core",
		"root/.cache/bespoke/kbuild/work-ab.0/fs/open.gcda":           "open",
		"usr/src/elsewhere/x.gcda":                                    "other build",
	} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	tw.Close()
	cache := t.TempDir()
	dir, sum, err := unpackProfile(buf.Bytes(), "/root/.cache/bespoke/kbuild/work-ab.0", cache)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum) != 16 || filepath.Dir(dir) != filepath.Join(cache, "pgo") {
		t.Errorf("profile dir %s, hash %q; want cache/pgo/profile-HASH", dir, sum)
	}
	for rel, want := range map[string]string{"kernel/sched/core.gcda": "core", "fs/open.gcda": "open"} {
		if got, err := os.ReadFile(filepath.Join(dir, rel)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", rel, got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.gcda")); err == nil {
		t.Error("a file of another build dir was unpacked")
	}
	if _, _, err := unpackProfile(buf.Bytes(), "/nowhere", t.TempDir()); err == nil {
		t.Error("a profile with no file of the build dir: no error")
	}
}
