package image

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bespoke-os/bespoke/internal/guestinit"
	"github.com/bespoke-os/bespoke/internal/kbuild"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/manifest"
)

// SyscallShake is what removing the syscalls nothing makes did to an
// image's kernel: they dispatch to sys_ni_syscall (ENOSYS).
type SyscallShake struct {
	Table   int      `json:"table"`   // 64-bit syscalls in the source's table
	Kept    int      `json:"kept"`    // of them, kept
	Removed []string `json:"removed"` // by name, in table order
	// RemovedNrs are the numbers of Removed.
	RemovedNrs []int `json:"removed_nrs"`
}

// shakeSyscalls returns the syscall numbers the image's kernels leave out
// of the syscall table (none unless the spec asks for it): every one of
// the source's table that neither the trace, the guest init (and guest
// tracer) nor the spec's keep_syscalls names.
func (b *builder) shakeSyscalls(tree *ksrc.Tree, m *manifest.Manifest) ([]int, error) {
	k := b.sp.Kernel
	if !k.ShakeSyscalls && len(k.KeepSyscalls) == 0 {
		return nil, nil
	}
	table, err := kbuild.ReadSyscallTable(tree.Dir)
	if err != nil {
		return nil, err
	}
	sh, err := PlanSyscalls(table, m, k.KeepSyscalls)
	if err != nil {
		return nil, err
	}
	b.report.Syscalls = sh
	fmt.Fprintf(b.opts.Progress, "      removing %d of %d syscalls from the table (kept: the trace's %d, the guest init's, keep_syscalls %d)\n",
		len(sh.Removed), sh.Table, len(m.Syscalls), len(k.KeepSyscalls))
	fmt.Fprintf(b.log, "syscalls removed from the table: %s\n", strings.Join(sh.Removed, " "))
	return sh.RemovedNrs, nil
}

// PlanSyscalls decides which syscalls of table to remove: those neither
// the manifest, guestinit.Syscalls nor keep names. A name in keep that
// the table lacks is an error.
func PlanSyscalls(table []kbuild.Syscall, m *manifest.Manifest, keep []string) (*SyscallShake, error) {
	byName := map[string]bool{}
	for _, s := range table {
		byName[s.Name] = true
	}
	var unknown []string
	for _, k := range keep {
		if !byName[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("keep_syscalls: %s not in the x86-64 syscall table (%s)", strings.Join(unknown, ", "), kbuild.SyscallTableFile)
	}
	used := map[string]bool{}
	for _, s := range slices.Concat(keep, guestinit.Syscalls) {
		used[s] = true
	}
	nrs := map[int]bool{}
	for _, s := range m.Syscalls {
		used[s.Name] = true
		if s.Nr > 0 { // 0 is read, or a manifest without numbers
			nrs[s.Nr] = true
		}
	}
	sh := &SyscallShake{Table: len(table)}
	for _, s := range table {
		switch {
		case used[s.Name] || nrs[s.Nr]:
			sh.Kept++
		case s.Entry == "":
			sh.Kept++ // no implementation to remove (e.g. uselib)
		default:
			sh.Removed = append(sh.Removed, s.Name)
			sh.RemovedNrs = append(sh.RemovedNrs, s.Nr)
		}
	}
	return sh, nil
}
