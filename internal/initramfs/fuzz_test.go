package initramfs

import (
	"bytes"
	"io"
	"testing"
)

// FuzzCpioReader: any bytes read as entries or an error, never a panic
// or a read past what a header declares.
func FuzzCpioReader(f *testing.F) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.WriteHeader(&Header{Name: "etc", Mode: TypeDir | 0o755})
	w.WriteHeader(&Header{Name: "etc/a", Mode: TypeReg | 0o644, Size: 3})
	w.Write([]byte("abc"))
	w.Close()
	f.Add(buf.Bytes())
	f.Add(append(bytes.Clone(buf.Bytes()), buf.Bytes()...)) // two archives
	f.Add([]byte("070701"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		for n := 0; n < 10000; n++ {
			h, err := r.Next()
			if err == io.EOF {
				if r.NextArchive() {
					continue
				}
				return
			}
			if err != nil {
				return
			}
			got, err := io.ReadAll(r)
			if err == nil && h.Type() == TypeReg && int64(len(got)) != h.Size {
				t.Errorf("%s: read %d bytes, header says %d", h.Name, len(got), h.Size)
			}
		}
	})
}

// FuzzCpioRoundTrip: an entry of any name and content written by Writer
// reads back the same.
func FuzzCpioRoundTrip(f *testing.F) {
	f.Add("etc/passwd", []byte("root:x:0:0::/root:/bin/sh\n"), uint32(0o644))
	f.Add("a", []byte{}, uint32(0o4755))
	f.Fuzz(func(t *testing.T, name string, data []byte, perm uint32) {
		if name == "" || name == trailerName || bytes.IndexByte([]byte(name), 0) >= 0 {
			return
		}
		var buf bytes.Buffer
		w := NewWriter(&buf)
		if err := w.WriteHeader(&Header{Name: name, Mode: TypeReg | perm&0o7777, Size: int64(len(data))}); err != nil {
			return // a name the format cannot hold: refused, fine
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r := NewReader(&buf)
		h, err := r.Next()
		if err != nil {
			t.Fatalf("reading back %q: %v", name, err)
		}
		got, err := io.ReadAll(r)
		if err != nil || h.Name != name || h.Mode != TypeReg|perm&0o7777 || !bytes.Equal(got, data) {
			t.Errorf("round trip of %q: %q %o %q %v", name, h.Name, h.Mode, got, err)
		}
	})
}
