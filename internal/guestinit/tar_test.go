package guestinit

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestAppendTar: archive/tar reads what AppendTar writes, long names too.
func TestAppendTar(t *testing.T) {
	long := strings.Repeat("d/", 60) + "kernel/sched/core.gcda" // 142 bytes
	files := []struct {
		name string
		data []byte
	}{
		{"a.gcda", []byte("adcg")},
		{"empty.gcda", nil},
		{long, bytes.Repeat([]byte{0, 1, 2}, 700)},
	}
	var b []byte
	for _, f := range files {
		var err error
		if b, err = AppendTar(b, f.name, f.data); err != nil {
			t.Fatal(err)
		}
	}
	b = EndTar(b)
	r := tar.NewReader(bytes.NewReader(b))
	for _, f := range files {
		h, err := r.Next()
		if err != nil {
			t.Fatalf("reading %s: %v", f.name, err)
		}
		data, _ := io.ReadAll(r)
		if h.Name != f.name || h.Mode != 0o644 || h.Typeflag != tar.TypeReg || !bytes.Equal(data, f.data) {
			t.Errorf("read %q mode %o type %c, %d bytes; wrote %q, %d bytes", h.Name, h.Mode, h.Typeflag, len(data), f.name, len(f.data))
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the files: %v, want io.EOF", err)
	}
	if _, err := AppendTar(nil, strings.Repeat("x", 101), nil); err == nil {
		t.Error("a 101-byte name without a slash was taken")
	}
	if _, err := AppendTar(nil, strings.Repeat("d/", 150)+"x", nil); err == nil {
		t.Error("a 301-byte name was taken")
	}
}
