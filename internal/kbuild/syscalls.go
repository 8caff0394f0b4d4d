package kbuild

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Syscall is one entry of the x86-64 syscall table.
type Syscall struct {
	Nr    int
	Name  string // "read"
	Entry string // "sys_read"; "" for a number with no implementation
}

// SyscallTableFile is the x86-64 syscall table in a kernel source tree.
const SyscallTableFile = "arch/x86/entry/syscalls/syscall_64.tbl"

// syscallHeader is what Kbuild generates from the table for the 64-bit
// dispatcher (arch/x86/entry/syscall_64.c is its only user), and
// syscallMarker, in a build dir, lists the syscalls a build removed from it.
const (
	syscallHeader = "arch/x86/include/generated/asm/syscalls_64.h"
	syscallMarker = ".bespoke-removed-syscalls"
)

// ReadSyscallTable returns the 64-bit syscalls (ABIs common and 64) of the
// kernel source tree at dir, by number.
func ReadSyscallTable(dir string) ([]Syscall, error) {
	data, err := os.ReadFile(filepath.Join(dir, SyscallTableFile))
	if err != nil {
		return nil, fmt.Errorf("reading the syscall table: %w", err)
	}
	return ParseSyscallTable(data)
}

// ParseSyscallTable parses syscall_64.tbl: "NR ABI NAME [ENTRY [COMPAT]]".
func ParseSyscallTable(data []byte) ([]Syscall, error) {
	var out []Syscall
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("syscall table line %d: %q: want NR ABI NAME", line, sc.Text())
		}
		if f[1] != "common" && f[1] != "64" {
			continue
		}
		nr, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("syscall table line %d: %w", line, err)
		}
		s := Syscall{Nr: nr, Name: f[2]}
		if len(f) > 3 {
			s.Entry = f[3]
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// headerEntry is a line of the generated header: __SYSCALL(NR, ENTRY) or
// __SYSCALL_NORETURN(NR, ENTRY).
var headerEntry = regexp.MustCompile(`^__SYSCALL(_NORETURN)?\((\d+), *([A-Za-z0-9_]+)\)$`)

// syscallRewrite names the way RemoveSyscalls rewrites the table; it is
// part of the key of every kernel with removed syscalls, so a change of
// the rewrite must change it.
const syscallRewrite = "syscalls_64.h-sys_ni_syscall-1"

// RemoveSyscalls rewrites a generated syscalls_64.h so that the syscalls
// numbered in remove dispatch to sys_ni_syscall (they return ENOSYS). A
// noreturn syscall (exit, exit_group) cannot be removed. It returns how
// many entries it changed.
func RemoveSyscalls(header []byte, remove []int) ([]byte, int, error) {
	want := map[int]bool{}
	for _, nr := range remove {
		want[nr] = true
	}
	var out bytes.Buffer
	n := 0
	for _, line := range strings.SplitAfter(string(header), "\n") {
		m := headerEntry.FindStringSubmatch(strings.TrimSpace(line))
		if m != nil {
			nr, _ := strconv.Atoi(m[2])
			if want[nr] {
				if m[1] != "" {
					return nil, 0, fmt.Errorf("syscall %d (%s) does not return: it cannot be removed", nr, m[3])
				}
				delete(want, nr)
				if m[3] != "sys_ni_syscall" {
					line = fmt.Sprintf("__SYSCALL(%d, sys_ni_syscall)\n", nr)
					n++
				}
			}
		}
		out.WriteString(line)
	}
	if len(want) > 0 {
		var missing []int
		for nr := range want {
			missing = append(missing, nr)
		}
		slices.Sort(missing)
		return nil, 0, fmt.Errorf("syscalls %v are not in the generated table", missing)
	}
	return out.Bytes(), n, nil
}

// shakeSyscalls routes the syscalls in remove to sys_ni_syscall in the
// build dir's generated header (just made by make archheaders) and
// records them in the build dir, so that a later build there without
// them regenerates the header first (resetSyscalls).
func shakeSyscalls(dir string, remove []int) error {
	p := filepath.Join(dir, syscallHeader)
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("removing syscalls: %w", err)
	}
	out, _, err := RemoveSyscalls(data, remove)
	if err != nil {
		return fmt.Errorf("removing syscalls from %s: %w", p, err)
	}
	if err := os.WriteFile(filepath.Join(dir, syscallMarker), []byte(fmt.Sprintln(remove)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(p, out, 0o644)
}

// resetSyscalls removes the generated header of a build dir whose last
// build removed syscalls, so that make writes it again from the table.
func resetSyscalls(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, syscallMarker)); err != nil {
		return nil
	}
	if err := os.Remove(filepath.Join(dir, syscallHeader)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.Remove(filepath.Join(dir, syscallMarker))
}
