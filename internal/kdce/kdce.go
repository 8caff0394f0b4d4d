// Package kdce removes unreferenced code and data from a kernel at its final
// link: dead-code elimination for x86, which Linux 6.12 does not offer there
// (only arm, mips, powerpc and riscv select
// HAVE_LD_DEAD_CODE_DATA_ELIMINATION).
//
// The kernel is compiled with Clang ThinLTO (CONFIG_LTO_CLANG_THIN), which
// puts every function and object into a section of its own and makes the
// x86 linker script place them (.text.NAME, .data.NAME). LTO by itself
// removes no global function: Kbuild runs it as a relocatable link
// (vmlinux.o, ld -r), where every global symbol must stay. bespoke-ld, the
// linker Kbuild runs (make LD=bespoke-ld), adds --gc-sections to the links
// of vmlinux, which drop every section no kept section refers to, starting
// from the entry point and the script's KEEP()s.
//
// Sections that code reaches only through symbols the linker script defines
// around them (__alt_instructions, __smp_locks, ...) look unreferenced to
// the linker: ScriptKeep lists x86's that the 6.12 script does not already
// KEEP, and PatchScript wraps them in KEEP() in a copy of the script. The
// generic ones (initcalls, __ex_table, __jump_table, static call sites,
// tracepoints, ...) are KEEP()s in include/asm-generic/vmlinux.lds.h
// already, for the architectures that have the option.
package kdce

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// ScriptKeep are the input sections of arch/x86/kernel/vmlinux.lds (6.12)
// that the kernel reads only between linker-script symbols, and that the
// script does not KEEP: without them, --gc-sections drops the alternatives
// (apply_alternatives patches nothing), the SMP lock prefixes, the APIC
// drivers and the CPU vendor table (found by linking with
// --print-gc-sections: each was reported removed).
var ScriptKeep = []string{
	".altinstructions",      // __alt_instructions .. __alt_instructions_end
	".altinstr_replacement", // the replacements the alternatives point to
	".smp_locks",            // __smp_locks .. __smp_locks_end
	".apicdrivers",          // __apicdrivers .. __apicdrivers_end
	".x86_cpu_dev.init",     // __x86_cpu_dev_start .. __x86_cpu_dev_end
}

// PatchScript returns lds with each of ScriptKeep's input section
// descriptions, *(NAME), wrapped in KEEP(). A script where one of them is
// not found is an error: a kernel whose script differs from 6.12's needs
// its list checked again.
func PatchScript(lds []byte) ([]byte, error) {
	out := lds
	var missing []string
	for _, name := range ScriptKeep {
		re := regexp.MustCompile(`(^|[^(])\*\(` + regexp.QuoteMeta(name) + `\)`)
		if !re.Match(out) {
			if bytes.Contains(out, []byte("KEEP(*("+name+"))")) {
				continue
			}
			missing = append(missing, name)
			continue
		}
		out = re.ReplaceAll(out, []byte("${1}KEEP(*("+name+"))"))
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the kernel's linker script has no %s: bespoke-ld knows the x86 script of Linux 6.12 (kdce.ScriptKeep): build this kernel without --kernel-dce", strings.Join(missing, ", "))
	}
	return out, nil
}

// Removed is what --gc-sections dropped from vmlinux, read from the
// linker's --print-gc-sections lines.
type Removed struct {
	Functions int `json:"functions"` // .text.NAME sections
	Data      int `json:"data"`      // .data.NAME, .rodata.NAME, .bss.NAME sections
	Other     int `json:"other"`     // sections of other names (.exit.text, .modinfo, ...)
	// Syscalls are the syscall entry points removed (__x64_sys_NAME as
	// NAME), sorted.
	Syscalls []string `json:"syscalls,omitempty"`
}

// ReadRemoved reads LogFile in the build dir dir; nil when there is none
// (a kernel linked without bespoke-ld).
func ReadRemoved(dir string) (*Removed, error) {
	data, err := os.ReadFile(filepath.Join(dir, LogFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r := ParseRemoved(data)
	return &r, nil
}

// ParseRemoved reads lld's or GNU ld's --print-gc-sections output:
// "removing unused section FILE:(SECTION)" (lld) or "removing unused
// section 'SECTION' in file 'FILE'" (GNU ld).
func ParseRemoved(log []byte) Removed {
	var r Removed
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		name, ok := removedSection(sc.Text())
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(name, ".text."):
			r.Functions++
			if sys, ok := strings.CutPrefix(name, ".text.__x64_sys_"); ok && sys != "ni_syscall" {
				r.Syscalls = append(r.Syscalls, sys)
			}
		case strings.HasPrefix(name, ".data.") || strings.HasPrefix(name, ".rodata.") || strings.HasPrefix(name, ".bss."):
			r.Data++
		default:
			r.Other++
		}
	}
	slices.Sort(r.Syscalls)
	r.Syscalls = slices.Compact(r.Syscalls)
	return r
}

func removedSection(line string) (string, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "removing unused section ")
	if !ok {
		return "", false
	}
	if i := strings.LastIndex(rest, ":("); i >= 0 && strings.HasSuffix(rest, ")") {
		return rest[i+2 : len(rest)-1], true
	}
	if name, ok := strings.CutPrefix(rest, "'"); ok {
		if i := strings.Index(name, "'"); i > 0 {
			return name[:i], true
		}
	}
	return "", false
}
