package kdce

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// script is a cut of 6.12's arch/x86/kernel/vmlinux.lds: the sections
// ScriptKeep wraps, one already kept, and one that must stay as it is.
const script = `.x86_cpu_dev.init : AT(ADDR(.x86_cpu_dev.init) - 0xffffffff80000000) { __x86_cpu_dev_start = .; *(.x86_cpu_dev.init) __x86_cpu_dev_end = .; }
 . = ALIGN(8); .apicdrivers : AT(ADDR(.apicdrivers) - 0xffffffff80000000) { __apicdrivers = .; *(.apicdrivers); __apicdrivers_end = .; }
 .altinstructions : AT(ADDR(.altinstructions) - 0xffffffff80000000) { __alt_instructions = .; *(.altinstructions) __alt_instructions_end = .; }
 .altinstr_replacement : AT(ADDR(.altinstr_replacement) - 0xffffffff80000000) { *(.altinstr_replacement) }
 .smp_locks : AT(ADDR(.smp_locks) - 0xffffffff80000000) { __smp_locks = .; *(.smp_locks) . = ALIGN(((1 << 12))); __smp_locks_end = .; }
 __ex_table : AT(ADDR(__ex_table) - 0xffffffff80000000) { __start___ex_table = .; KEEP(*(__ex_table)) __stop___ex_table = .; }
 .text : { *(.text .text.[0-9a-zA-Z_]* .text.fixup) }
`

func TestPatchScript(t *testing.T) {
	got, err := PatchScript([]byte(script))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ScriptKeep {
		if !bytes.Contains(got, []byte("KEEP(*("+name+"))")) {
			t.Errorf("%s is not kept:\n%s", name, got)
		}
		if bytes.Contains(got, []byte("KEEP(KEEP(")) {
			t.Errorf("a section kept twice:\n%s", got)
		}
	}
	if !bytes.Contains(got, []byte("{ *(.text .text.[0-9a-zA-Z_]* .text.fixup) }")) || !bytes.Contains(got, []byte("KEEP(*(__ex_table))")) {
		t.Errorf("other sections changed:\n%s", got)
	}
	// Patching the patched script changes nothing.
	again, err := PatchScript(got)
	if err != nil || !bytes.Equal(again, got) {
		t.Errorf("patching again: %v\n%s", err, again)
	}
	// A script without one of them is another kernel's: an error naming it.
	_, err = PatchScript([]byte(strings.ReplaceAll(script, "*(.smp_locks)", "")))
	if err == nil || !strings.Contains(err.Error(), ".smp_locks") {
		t.Errorf("script without .smp_locks: %v, want an error naming it", err)
	}
}

func TestParseRemoved(t *testing.T) {
	log := `removing unused section vmlinux.o:(.text.__x64_sys_iopl)
removing unused section vmlinux.o:(.text.__x64_sys_ni_syscall)
removing unused section vmlinux.o:(.text.__x64_sys_fork)
removing unused section vmlinux.o:(.text.helper)
removing unused section vmlinux.o:(.rodata.linux_banner)
removing unused section vmlinux.o:(.bss.dma_ops)
removing unused section vmlinux.o:(.data.init_uts_ns)
removing unused section vmlinux.o:(.exit.text)
removing unused section '.text.gnu_style' in file 'vmlinux.a(foo.o)'
ld.lld: warning: something else
`
	r := ParseRemoved([]byte(log))
	want := Removed{Functions: 5, Data: 3, Other: 1, Syscalls: []string{"fork", "iopl"}}
	if r.Functions != want.Functions || r.Data != want.Data || r.Other != want.Other || !slices.Equal(r.Syscalls, want.Syscalls) {
		t.Errorf("ParseRemoved = %+v, want %+v", r, want)
	}
}

// TestLDMain runs bespoke-ld with a fake linker that records its
// arguments: the vmlinux link gets --gc-sections and the patched script,
// its removed sections go to LogFile and not to the output; another link
// runs unchanged; a failing link's status comes back.
func TestLDMain(t *testing.T) {
	dir := t.TempDir()
	args := filepath.Join(dir, "args")
	fake := filepath.Join(dir, "ld")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"$@\" >> "+args+"\necho 'removing unused section vmlinux.o:(.text.__x64_sys_iopl)'\necho 'a line to keep'\ncase \"$*\" in *fail*) exit 3;; esac\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	lds := filepath.Join(dir, "arch/x86/kernel/vmlinux.lds")
	if err := os.MkdirAll(filepath.Dir(lds), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lds, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	var stdout, stderr bytes.Buffer
	if code := LDMain(fake, []string{"-m", "elf_x86_64", "--script=" + lds, "-o", "vmlinux", "vmlinux.o"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	patched := filepath.Join(filepath.Dir(lds), PatchedScript)
	if data, err := os.ReadFile(patched); err != nil || !bytes.Contains(data, []byte("KEEP(*(.altinstructions))")) {
		t.Errorf("patched script %s: %v\n%s", patched, err, data)
	}
	if code := LDMain(fake, []string{"-m", "elf_x86_64", "-r", "-o", "vmlinux.o", "a.o"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if code := LDMain(fake, []string{"-o", "fail", "a.o"}, &stdout, &stderr); code != 3 {
		t.Errorf("a failing link: exit %d, want the linker's 3", code)
	}
	got, err := os.ReadFile(args)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	want := []string{
		"--gc-sections --print-gc-sections -m elf_x86_64 --script=" + patched + " -o vmlinux vmlinux.o",
		"-m elf_x86_64 -r -o vmlinux.o a.o",
		"-o fail a.o",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("the linker ran with\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	log, err := os.ReadFile(filepath.Join(dir, LogFile))
	if err != nil || !strings.Contains(string(log), ".text.__x64_sys_iopl") {
		t.Errorf("%s: %v\n%s", LogFile, err, log)
	}
	// The vmlinux link's removed sections went to the log only; the
	// other links' output passes through.
	if n := strings.Count(stdout.String(), "removing unused section"); n != 2 || strings.Count(stdout.String(), "a line to keep") != 3 {
		t.Errorf("stdout:\n%s\nwant the vmlinux link's removed sections left out", stdout.String())
	}
	var e bytes.Buffer
	if code := LDMain("", []string{"-o", "x"}, &stdout, &e); code != 2 || !strings.Contains(e.String(), EnvLD) {
		t.Errorf("without %s: exit %d, %q", EnvLD, code, e.String())
	}
}
