package elfdeps

import (
	"bytes"
	"os"
	"testing"
)

// FuzzReadELF: a mutated ELF reads as an object or an error, never a
// panic (readELF is what Inspect and the closure run on every program and
// library).
func FuzzReadELF(f *testing.F) {
	for _, p := range []string{"/bin/true", "/usr/lib/x86_64-linux-gnu/libc.so.6"} {
		if data, err := os.ReadFile(p); err == nil && len(data) < 4<<20 {
			f.Add(data[:min(len(data), 16<<10)]) // the headers, and a cut
			f.Add(data)
		}
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		readELF(bytes.NewReader(data))
	})
}
