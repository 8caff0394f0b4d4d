package costmodel

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReadSystemMap: a System.map names functions from each text symbol
// to the next symbol.
func TestReadSystemMap(t *testing.T) {
	p := filepath.Join(t.TempDir(), "System.map")
	m := "ffffffff81000000 T _stext\nffffffff81000010 t helper\nffffffff81000040 D some_data\nffffffff81000100 T last\n"
	if err := os.WriteFile(p, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSymbols(p)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[uint64]string{
		0xffffffff81000000: "_stext",
		0xffffffff8100000f: "_stext",
		0xffffffff81000010: "helper",
		0xffffffff8100003f: "helper",
		0xffffffff81000040: "", // data
		0xffffffff81000100: "", // the last symbol has no known end
	} {
		if got := s.Name(addr); got != want {
			t.Errorf("Name(%#x) = %q, want %q", addr, got, want)
		}
	}
	for _, bad := range []string{"not a map\n", "ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n"} {
		if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadSymbols(p); err == nil {
			t.Errorf("ReadSymbols of %q: no error", bad)
		}
	}
}
