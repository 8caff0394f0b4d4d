package initramfs

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAppendAndWalk: a segment appended to an archive holds the new file
// and its parent directories, except those the archive had; Walk reads
// both archives.
func TestAppendAndWalk(t *testing.T) {
	host := t.TempDir()
	for p, data := range map[string]string{"/etc/a.conf": "a", "/opt/app/lib/x.so": "xx"} {
		full := filepath.Join(host, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	base := filepath.Join(out, "base.cpio.gz")
	// The base archive: /etc/a.conf and /opt (as a directory the image set up).
	b := newBuilder(host, CompressGzip, nil)
	if err := b.addHost("/etc/a.conf", "data", false, 0); err != nil {
		t.Fatal(err)
	}
	b.put("/opt", &node{hdr: Header{Mode: TypeDir | 0o700, Uid: 42}, kind: KindDir}, false)
	if err := b.addParents(); err != nil {
		t.Fatal(err)
	}
	if err := b.write(context.Background(), base, CompressGzip); err != nil {
		t.Fatal(err)
	}
	rep, err := Append(context.Background(), AppendOptions{
		Archive: base, Output: base, Paths: []string{"/opt/app/lib/x.so"},
		Existing: map[string]bool{"/etc": true, "/etc/a.conf": true, "/opt": true}, Compression: CompressGzip, HostRoot: host,
	})
	if err != nil {
		t.Fatal(err)
	}
	var segment []string
	for _, f := range rep.Files {
		segment = append(segment, f.Path)
	}
	if want := []string{"/opt/app", "/opt/app/lib", "/opt/app/lib/x.so"}; !equal(segment, want) {
		t.Errorf("segment holds %v, want %v (not /opt, which the archive had)", segment, want)
	}
	got := map[string]string{}
	err = Walk(context.Background(), base, func(h *Header, r io.Reader) error {
		data, err := io.ReadAll(r)
		got["/"+h.Name] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"/etc/a.conf": "a", "/opt/app/lib/x.so": "xx", "/opt": ""} {
		if d, ok := got[p]; !ok || d != want {
			t.Errorf("after Append, %s = %q (present %v), want %q", p, d, ok, want)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestWalkDamagedXZ: an xz archive whose stream is cut after the cpio's
// end (its index and footer lost) is an error, not a clean walk: xz's
// exit status counts.
func TestWalkDamagedXZ(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("no xz")
	}
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "a"), []byte("data"), 0o644)
	out := filepath.Join(t.TempDir(), "root.cpio.xz")
	b := newBuilder(host, CompressXZ, nil)
	if err := b.addHost("/a", "data", false, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.write(context.Background(), out, CompressXZ); err != nil {
		t.Fatal(err)
	}
	walk := func() error {
		return Walk(context.Background(), out, func(*Header, io.Reader) error { return nil })
	}
	if err := walk(); err != nil {
		t.Fatalf("the whole archive: %v", err)
	}
	data, _ := os.ReadFile(out)
	os.WriteFile(out, data[:len(data)-12], 0o644) // the stream footer
	if err := walk(); err == nil || !strings.Contains(err.Error(), "xz") {
		t.Errorf("a truncated xz stream: %v, want xz's error", err)
	}
}
