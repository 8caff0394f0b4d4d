package spec

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: any bytes give a spec or an error, never a panic; a spec
// Parse accepts is valid and keeps what Validate promises.
func FuzzParse(f *testing.F) {
	ex, _ := filepath.Glob("../../examples/*/bespoke.yaml")
	for _, p := range ex {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	for _, s := range []string{"cmd: [a]\n", "cmd: a\nports: [80, '53/udp']\nready: tcp:{port}\n", "cmd: [a]\n---\ncmd: [b]\n", "x-a: &a [1]\ncmd: *a\n", "{", "cmd: [a]\nmemory: 1G\nenv: {A: '{port}'}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sp, err := Parse("bespoke.yaml", data)
		if err != nil {
			return
		}
		if len(sp.Cmd) == 0 {
			t.Errorf("accepted a spec without cmd: %q", data)
		}
		if err := sp.Validate(); err != nil {
			t.Errorf("a parsed spec does not validate again: %v\n%q", err, data)
		}
	})
}
