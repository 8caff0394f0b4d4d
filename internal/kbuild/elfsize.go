package kbuild

import (
	"debug/elf"
	"fmt"
)

// Sizes are a kernel image's section sizes in bytes, summed as size(1)
// does in Berkeley format: text is everything allocated and read-only
// (code and read-only data), data is allocated and writable, bss is
// allocated with no file content.
type Sizes struct {
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
	return s, nil
}
