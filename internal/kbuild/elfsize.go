package kbuild

import (
	"debug/elf"
	"fmt"
)

// Sizes are a kernel image's section sizes in bytes, summed as size(1)
// does in Berkeley format: text is everything allocated and read-only
// (code and read-only data), data is allocated and writable, bss is
// allocated with no file content. Code is the bytes of the functions in
// executable sections (their symbols' sizes): vmlinux pads .text to a
// 2 MB boundary, so Text moves in steps and hides most changes to code.
type Sizes struct {
	Code uint64 `json:"code"`
	Text uint64 `json:"text"`
	Data uint64 `json:"data"`
	BSS  uint64 `json:"bss"`
}

// ELFSizes reads the section sizes of an ELF file such as vmlinux.
func ELFSizes(path string) (Sizes, error) {
	var s Sizes
	f, err := elf.Open(path)
	if err != nil {
		return s, fmt.Errorf("reading section sizes: %w", err)
	}
	defer f.Close()
	for _, sec := range f.Sections {
		if sec.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		switch {
		case sec.Type == elf.SHT_NOBITS:
			s.BSS += sec.Size
		case sec.Flags&elf.SHF_WRITE != 0:
			s.Data += sec.Size
		default:
			s.Text += sec.Size
		}
	}
	syms, err := f.Symbols()
	if err != nil && err != elf.ErrNoSymbols {
		return s, fmt.Errorf("reading symbols: %w", err)
	}
	for _, sym := range syms {
		if elf.ST_TYPE(sym.Info) != elf.STT_FUNC || int(sym.Section) >= len(f.Sections) || sym.Section == elf.SHN_UNDEF {
			continue
		}
		if sec := f.Sections[sym.Section]; sec.Flags&elf.SHF_EXECINSTR != 0 && sec.Flags&elf.SHF_ALLOC != 0 {
			s.Code += sym.Size
		}
	}
	return s, nil
}
