package kconfig

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseConfig: any bytes give a config or an error, never a panic; a
// config written out reads back with the same settings.
func FuzzParseConfig(f *testing.F) {
	for _, p := range []string{"testdata/debian-cloud-amd64.config", "testdata/explain.config"} {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\n"))
	f.Add([]byte("CONFIG_=y\n#\nCONFIG_A\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(bytes.NewReader(data))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := c.Write(&buf); err != nil {
			t.Fatal(err)
		}
		c2, err := ParseConfig(&buf)
		if err != nil {
			t.Fatalf("a config bespoke wrote does not parse: %v\n%s", err, buf.Bytes())
		}
		for _, sym := range c.Symbols() {
			if c.Value(sym) != c2.Value(sym) {
				t.Errorf("%s: %q, then %q after a round trip", sym, c.Value(sym), c2.Value(sym))
			}
		}
	})
}

// FuzzParseKconfig: a Kconfig file of any content parses or fails with an
// error, never a panic or a hang.
func FuzzParseKconfig(f *testing.F) {
	if data, err := os.ReadFile("testdata/tree/Kconfig"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("config A\n\tbool \"a\"\n\tdepends on B && !C\n\tselect D if E\n\thelp\n\t  text\nmenu \"m\"\nendmenu\n"))
	f.Add([]byte("choice\n\tprompt \"p\"\nconfig X\n\tbool \"x\"\nendchoice\nif A\nendif\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "Kconfig"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		ParseKconfig(dir, "x86")
	})
}

func TestParseKconfigSourceLoop(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Kconfig"), []byte("source \"Kconfig\"\n"), 0o644)
	if _, err := ParseKconfig(dir, "x86"); err == nil {
		t.Error("a Kconfig that sources itself parsed")
	}
}
