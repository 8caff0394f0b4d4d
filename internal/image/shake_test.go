package image

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/libshake"
)

// TestRestoreFunctionsChecksHost: verify --fix copies the host's file
// again to restore a function, and refuses one that is not the file the
// image was built from.
func TestRestoreFunctionsChecksHost(t *testing.T) {
	var objs []libshake.Object
	for _, p := range []string{"/usr/bin/date", "/usr/lib/x86_64-linux-gnu/libc.so.6"} {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Skip(err)
		}
		objs = append(objs, libshake.Object{Path: real, Host: real})
	}
	dir := t.TempDir()
	sm, _, _, err := shakeFiles(objs, nil, nil, nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	libc := sm.Objects[1]
	if libc.Path != objs[1].Path || len(libc.HostSHA256) != 64 {
		t.Fatalf("shake map entry %s, hash %q; want libc with its SHA-256", libc.Path, libc.HostSHA256)
	}
	keep := []Fix{{What: libc.Path + ":" + libc.Removed[0].Name}}
	if err := writeJSON(filepath.Join(dir, libshake.MapFile), sm); err != nil {
		t.Fatal(err)
	}
	paths, replace, err := restoreFunctions(dir, t.TempDir(), keep, io.Discard)
	if err != nil || len(paths) != 1 || replace[libc.Path] == "" {
		t.Fatalf("restoreFunctions: %v, %v, %v", paths, replace, err)
	}
	sm.Objects[1].HostSHA256 = strings.Repeat("0", 64)
	if err := writeJSON(filepath.Join(dir, libshake.MapFile), sm); err != nil {
		t.Fatal(err)
	}
	if _, _, err := restoreFunctions(dir, t.TempDir(), keep, io.Discard); err == nil || !strings.Contains(err.Error(), "not the file the image was built from") {
		t.Errorf("restore from a changed host file: %v, want a refusal", err)
	}
}
