package manifest

import (
	"bytes"
	"os"
	"testing"
)

// FuzzDecode: any bytes decode to a manifest or an error, never a panic;
// a manifest that decodes encodes and decodes again to the same.
func FuzzDecode(f *testing.F) {
	if data, err := os.ReadFile("../kconfig/testdata/redis.manifest.json"); err == nil {
		f.Add(data)
	}
	for _, s := range []string{`{}`, `{"version":1}`, `{"syscalls":[{"name":"read","count":1}]}`, `[`, `{"paths":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := m.Encode(&buf); err != nil {
			t.Fatalf("encoding a decoded manifest: %v", err)
		}
		if _, err := Decode(&buf); err != nil {
			t.Errorf("a manifest bespoke wrote does not decode: %v\n%s", err, buf.Bytes())
		}
	})
}
