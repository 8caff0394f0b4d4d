package image

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bespoke-os/bespoke/internal/guestinit"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/trace"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// SeccompKconfig are the kernel options the guest's seccomp filter needs.
// SECCOMP_FILTER depends on NET (the filter is a socket filter program):
// an image with ports has it anyway.
var SeccompKconfig = []string{"SECCOMP", "SECCOMP_FILTER", "NET"}

// SeccompPolicy returns the seccomp filter of an image of sp whose
// program's trace is m: the syscalls the trace saw, those every program
// makes unseen by a tracer and the filter's helper makes
// (guestinit.SeccompBase), and the spec's seccomp_allow; nil when the
// spec's mode is off. A name that is no x86-64 syscall is an error.
func SeccompPolicy(sp *spec.Spec, m *manifest.Manifest) (*vm.Seccomp, error) {
	mode := sp.SeccompDefault()
	if mode == spec.SeccompOff {
		return nil, nil
	}
	var unknown []string
	for _, name := range sp.SeccompAllow {
		if trace.SyscallNumber(name) < 0 {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("seccomp_allow: %s: not x86-64 syscalls of Linux 6.12", strings.Join(unknown, ", "))
	}
	allow := slices.Concat(guestinit.SeccompBase, sp.SeccompAllow)
	for _, s := range m.Syscalls {
		// A trace names every syscall from the same table; a number it
		// could not name ("syscall_N") has no place in an allowlist.
		if trace.SyscallNumber(s.Name) >= 0 {
			allow = append(allow, s.Name)
		}
	}
	slices.Sort(allow)
	return &vm.Seccomp{Mode: mode, Allow: slices.Compact(allow)}, nil
}
