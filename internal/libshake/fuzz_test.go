package libshake

import (
	"debug/elf"
	"testing"
)

// FuzzDecode: any bytes decode to an instruction of 1 to 15 bytes within
// them, or an error; never a panic.
func FuzzDecode(f *testing.F) {
	for _, s := range [][]byte{{0xc3}, {0xf3, 0x0f, 0x1e, 0xfa}, {0x62, 0xf1, 0x7c, 0x48, 0x10, 0x05, 1, 2, 3, 4}, {0x8f, 0x48, 0x78, 0xc3, 0xc8, 0x38}, {0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8}, {0x66, 0x67, 0xa1, 1, 2, 3, 4}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := decode(b)
		if err != nil {
			return
		}
		if in.len < 1 || in.len > 15 || in.len > len(b) {
			t.Fatalf("decode(% x): length %d", b, in.len)
		}
		Gadgets(b)
	})
}

// FuzzParseEhFrame: any bytes parse to FDEs or an error, and an LSDA
// reads to landing pads or an error; never a panic.
func FuzzParseEhFrame(f *testing.F) {
	if ef, err := elf.Open("/usr/bin/date"); err == nil {
		if s := ef.Section(".eh_frame"); s != nil {
			if d, err := s.Data(); err == nil && len(d) > 4096 {
				f.Add(d[:4096], uint64(0x1000))
			}
		}
		ef.Close()
	}
	f.Add([]byte{0x10, 0, 0, 0, 0, 0, 0, 0, 1, 'z', 'R', 0, 1, 0x78, 0x10, 1, 0x1b, 0, 0, 0}, uint64(0x400))
	f.Fuzz(func(t *testing.T, data []byte, addr uint64) {
		fdes, err := parseEhFrame(data, addr)
		if err != nil {
			return
		}
		for _, fd := range fdes {
			if fd.end <= fd.start {
				t.Fatalf("FDE [%#x, %#x): empty", fd.start, fd.end)
			}
			landingPads(data, addr, fd.lsda, fd.start)
		}
		functions(fdes, addr, addr+uint64(len(data)))
	})
}
