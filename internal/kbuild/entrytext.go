package kbuild

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The x86-64 linker script (arch/x86/kernel/vmlinux.lds.S) aligns the
// entry text to 2 MiB on both sides (ALIGN_ENTRY_TEXT_BEGIN and _END), so
// that page table isolation can map it into the user page tables with one
// PMD. The padding lies inside .text, before _etext, so the kernel never
// frees it: in a bespoke kernel it was 2.5 MB of the 6 MB that the boot
// reports as kernel code (0x57a1c0-0x600000 and 0x601103-0x800000 in the
// redis kernel), held in every guest's memory. Only page table isolation
// needs the alignment (arch/x86/mm/pti.c), and it exists only with
// CPU_MITIGATIONS, which bespoke's kernels leave off. So a build of a
// kernel without CPU_MITIGATIONS page-aligns the entry text instead, in
// the linker script Kbuild generated in the build dir: .text ends 2.5 MB
// sooner, and the kernel frees the gap up to .rodata, still 2 MiB aligned,
// at boot ("Freeing unused kernel image (text/rodata gap) memory").
const (
	ldsFile = "arch/x86/kernel/vmlinux.lds"
	// ldsRewrite names the rewrite; it is part of every key, so a change
	// of the rewrite must change it.
	ldsRewrite = "vmlinux.lds-entry-text-page-aligned-1"
	pmdAlign   = ". = ALIGN((1 << 21));"
	pageAlign  = ". = ALIGN((1 << 12));"
)

// errNoEntryText: the linker script does not have the layout
// UnpadEntryText knows.
var errNoEntryText = errors.New("no 2 MiB aligned entry text in the linker script")

// UnpadEntryText rewrites a generated x86-64 vmlinux.lds so that the
// entry text is page aligned, not 2 MiB aligned: the line before
// "*(.text..__x86.rethunk_untrain)" and the line after the one that ends
// the entry text ("__entry_text_end = .;"), each ". = ALIGN((1 << 21));",
// both before "_etext = .;". A script with another layout is an error
// (errNoEntryText), and one already rewritten is returned as it is.
func UnpadEntryText(lds []byte) ([]byte, error) {
	lines := strings.SplitAfter(string(lds), "\n")
	untrain, end, etext := -1, -1, -1
	for i, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case t == "*(.text..__x86.rethunk_untrain)" && untrain < 0:
			untrain = i
		case strings.HasSuffix(t, "__entry_text_end = .;") && end < 0:
			end = i
		case t == "_etext = .;" && etext < 0:
			etext = i
		}
	}
	if untrain < 1 || end < untrain || etext < end+2 {
		return nil, errNoEntryText
	}
	before, after := strings.TrimSpace(lines[untrain-1]), strings.TrimSpace(lines[end+1])
	if before == pageAlign && after == pageAlign {
		return lds, nil
	}
	if before != pmdAlign || after != pmdAlign {
		return nil, fmt.Errorf("%w: %q before the entry text and %q after it", errNoEntryText, before, after)
	}
	for _, i := range []int{untrain - 1, end + 1} {
		lines[i] = strings.Replace(lines[i], pmdAlign, pageAlign, 1)
	}
	return []byte(strings.Join(lines, "")), nil
}

// unpadEntryText rewrites the build dir's generated linker script (just
// made by make) with UnpadEntryText, unless the kernel has CPU_MITIGATIONS
// (page table isolation needs the padding). It says what it did.
func unpadEntryText(dir string, say func(string, ...any)) error {
	cfg, err := os.ReadFile(filepath.Join(dir, ".config"))
	if err != nil {
		return err
	}
	if configMap(cfg)["CONFIG_CPU_MITIGATIONS"] == "y" {
		say("kernel: CPU_MITIGATIONS is on: the entry text keeps its 2 MiB alignment, which page table isolation needs")
		return nil
	}
	p := filepath.Join(dir, ldsFile)
	lds, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	out, err := UnpadEntryText(lds)
	if errors.Is(err, errNoEntryText) {
		say("kernel: %s: %v; left as it is (the kernel keeps 2 MiB of padding in .text)", p, err)
		return nil
	}
	if err != nil || bytes.Equal(out, lds) {
		return err
	}
	return os.WriteFile(p, out, 0o644)
}
