package verify

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/bespoke-os/bespoke/internal/features"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// Finding kinds.
const (
	// MissingFile: the program looked for a file the image lacks and the
	// host has.
	MissingFile = "missing-file"
	// MissingSyscall: a syscall returned ENOSYS in the guest and not on
	// the host.
	MissingSyscall = "missing-syscall"
	// MissingSocket: socket(2) failed in the guest for a family, type or
	// protocol the host kernel has.
	MissingSocket = "missing-socket"
	// MissingKernelPath: a /proc or /sys path the host has is absent in
	// the guest (a kernel feature left out).
	MissingKernelPath = "missing-kernel-path"
	// MissingFilesystem: mount(2) failed with ENODEV: the filesystem type
	// is not in the kernel.
	MissingFilesystem = "missing-filesystem"
	// SeccompDenial: the program made a syscall outside the image's
	// seccomp allowlist (the guest init's filter reported it), or was
	// killed by SIGSYS, the verdict of a filter of its own.
	SeccompDenial = "seccomp-denial"
	// FailedSyscall: a syscall failed in the guest with an error it did
	// not return on the host, and the feature knowledge ties it to an
	// option the kernel lacks (fcntl's locks return EACCES without
	// FILE_LOCKING). Reported only with that fix.
	FailedSyscall = "failed-syscall"
	// RemovedFunction: the program trapped in a function --shake-libs
	// removed from the image (the kernel's fault report, mapped through
	// the image's shake-map.json).
	RemovedFunction = "removed-function"
)

// Finding is one thing the guest lacked, with the evidence and, when
// bespoke knows one, the fix.
type Finding struct {
	Kind     string `json:"kind"`
	Subject  string `json:"subject"`  // the path, syscall, socket triple or filesystem
	Evidence string `json:"evidence"` // what was seen in the guest and on the host
	// Include is a host path to add to the image; Enable are Kconfig
	// symbols (without CONFIG_) to turn on. Both empty: no automatic fix
	// (Hint says what to do).
	Include string   `json:"include,omitempty"`
	Enable  []string `json:"enable,omitempty"`
	// Keep is a syscall the image removed from its table, to keep.
	Keep string `json:"keep_syscall,omitempty"`
	// Allow is a syscall to add to the image's seccomp allowlist.
	Allow string `json:"seccomp_allow,omitempty"`
	// Restore is a removed function to put back, FILE:FUNCTION.
	Restore string `json:"restore_function,omitempty"`
	Hint    string `json:"hint,omitempty"`
}

func (f Finding) String() string {
	s := fmt.Sprintf("%s %s: %s", f.Kind, f.Subject, f.Evidence)
	switch {
	case f.Include != "":
		s += "; fix: add " + f.Include + " to the image"
	case len(f.Enable) > 0:
		s += "; fix: enable CONFIG_" + strings.Join(f.Enable, ", CONFIG_")
	case f.Keep != "":
		s += "; fix: keep " + f.Keep + " in the syscall table"
	case f.Allow != "":
		s += "; fix: add " + f.Allow + " to the seccomp allowlist"
	case f.Hint != "":
		s += "; " + f.Hint
	}
	return s
}

// Facts is what Classify compares.
type Facts struct {
	Host  *manifest.Manifest // the trace on the host, at build time
	Guest *manifest.Manifest // the trace in the guest
	// InImage reports whether the image holds a path.
	InImage func(path string) bool
	// Enabled reports whether a Kconfig symbol is =y in the image's kernel.
	Enabled func(sym string) bool
	// Lstat looks at the host (default os.Lstat).
	Lstat func(path string) (fs.FileInfo, error)
	// Removed are the syscalls the image's kernel left out of its table.
	Removed []string
	// Excluded says why a host path must never be added to the image, or
	// "" (nil: nothing is excluded).
	Excluded func(path string) string
}

// lookups are the path operations that read: an ENOENT on them means the
// program looked for something. An ENOENT on a write (creating a file in
// a missing directory) is told apart: the directory is missing.
var lookups = []string{"open", "stat", "access", "exec", "readlink", "opendir", "chdir", "statfs"}

// Classify compares the guest's trace with the host's and returns what
// the guest lacked, sorted by kind and subject.
func Classify(f Facts) []Finding {
	if f.Lstat == nil {
		f.Lstat = os.Lstat
	}
	if f.Excluded == nil {
		f.Excluded = func(string) string { return "" }
	}
	host := indexPaths(f.Host)
	var out []Finding
	for _, p := range f.Guest.Paths {
		// A file the program creates is its own: an ENOENT there is a
		// missing directory, which the spec's dirs provide.
		if p.Result != "ENOENT" || p.Write || !slices.ContainsFunc(p.Ops, func(op string) bool { return slices.Contains(lookups, op) }) {
			continue
		}
		hp, traced := host[p.Path]
		if kernelPath(p.Path) {
			if traced && hp.Result == "found" {
				out = append(out, kernelPathFinding(p, f.Enabled))
			}
			continue
		}
		if f.InImage(p.Path) {
			continue
		}
		fi, err := f.Lstat(p.Path)
		if err != nil {
			continue // missing on the host too: a probe, not a loss
		}
		ev := fmt.Sprintf("%s returned ENOENT in the guest", strings.Join(p.Ops, "/"))
		switch {
		case traced && hp.Result == "found":
			ev += "; found on the host while tracing"
		case traced:
			ev += fmt.Sprintf("; %s on the host while tracing, present on the host now", hp.Result)
		default:
			ev += "; not looked up on the host while tracing, present on the host"
		}
		fd := Finding{Kind: MissingFile, Subject: p.Path, Evidence: ev}
		switch why := f.Excluded(p.Path); {
		case why != "":
			fd.Hint = "not added: " + why
		case fi.Mode().IsRegular() || fi.Mode().Type() == fs.ModeSymlink:
			fd.Include = p.Path
		default:
			fd.Hint = fmt.Sprintf("a %s on the host: add it to the spec's include (directories are copied whole) or create it with dirs", kindOf(fi))
		}
		out = append(out, fd)
	}

	hostSys := map[string]manifest.Syscall{}
	for _, s := range f.Host.Syscalls {
		hostSys[s.Name] = s
	}
	for _, s := range f.Guest.Syscalls {
		n := s.Errors["ENOSYS"]
		if n == 0 || hostSys[s.Name].Errors["ENOSYS"] > 0 {
			continue
		}
		ev := fmt.Sprintf("ENOSYS %d of %d times in the guest", n, s.Count)
		if h, ok := hostSys[s.Name]; ok {
			ev += fmt.Sprintf("; %d calls on the host, none ENOSYS", h.Count)
		} else {
			ev += "; not called on the host"
		}
		if slices.Contains(f.Removed, s.Name) {
			out = append(out, Finding{Kind: MissingSyscall, Subject: s.Name, Keep: s.Name,
				Evidence: ev + "; removed from the syscall table (kernel.shake_syscalls)"})
			continue
		}
		out = append(out, withSymbols(Finding{Kind: MissingSyscall, Subject: s.Name, Evidence: ev},
			&manifest.Manifest{Syscalls: []manifest.Syscall{s}}, f.Enabled))
	}

	for _, s := range f.Guest.Syscalls {
		var errs []string
		for _, e := range slices.Sorted(maps.Keys(s.Errors)) {
			if e != "ENOSYS" && hostSys[s.Name].Errors[e] == 0 {
				errs = append(errs, fmt.Sprintf("%s %d times", e, s.Errors[e]))
			}
		}
		if len(errs) == 0 {
			continue
		}
		ev := fmt.Sprintf("%s of %d calls in the guest; not on the host", strings.Join(errs, ", "), s.Count)
		fd := withSymbols(Finding{Kind: FailedSyscall, Subject: s.Name, Evidence: ev},
			&manifest.Manifest{Syscalls: []manifest.Syscall{{Name: s.Name, Count: s.Count}}}, f.Enabled)
		if len(fd.Enable) > 0 {
			out = append(out, fd)
		}
	}

	for _, s := range f.Guest.Sockets {
		if s.Result != "EAFNOSUPPORT" && s.Result != "EPROTONOSUPPORT" && s.Result != "ESOCKTNOSUPPORT" && s.Result != "EPROTOTYPE" {
			continue
		}
		triple := fmt.Sprintf("socket(%s, %s, %d)", s.Domain, s.Type, s.Protocol)
		hostOK := slices.ContainsFunc(f.Host.Sockets, func(h manifest.Socket) bool {
			return h.Domain == s.Domain && h.Type == s.Type && h.Protocol == s.Protocol && h.Result == "ok"
		})
		if !hostOK {
			continue // the host kernel lacks it too: the program copes
		}
		out = append(out, withSymbols(Finding{Kind: MissingSocket, Subject: triple,
			Evidence: fmt.Sprintf("%s in the guest x%d; ok on the host", s.Result, s.Count)},
			&manifest.Manifest{Sockets: []manifest.Socket{s}}, f.Enabled))
	}

	if m := f.Guest.Syscall("mount"); m != nil && m.Errors["ENODEV"] > 0 {
		for _, fsys := range f.Guest.Filesystems {
			if !slices.Contains(fsys.Via, "mount") {
				continue
			}
			fd := withSymbols(Finding{Kind: MissingFilesystem, Subject: fsys.Type,
				Evidence: fmt.Sprintf("mount returned ENODEV %d times in the guest", m.Errors["ENODEV"])},
				&manifest.Manifest{Filesystems: []manifest.Filesystem{fsys}}, f.Enabled)
			if len(fd.Enable) > 0 {
				out = append(out, fd)
			}
		}
	}

	if e := f.Guest.Exit; e != nil && e.Signal == "SIGSYS" {
		out = append(out, Finding{Kind: SeccompDenial, Subject: f.Guest.Program.Path,
			Evidence: "killed by SIGSYS in the guest: a seccomp filter refused a syscall",
			Hint:     "the program installs its own seccomp filter: see which syscall the filter refused in the console log, and whether the kernel lacks it"})
	}
	slices.SortFunc(out, func(a, b Finding) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Subject, b.Subject)
	})
	return out
}

// RemovedFindings turns the removed functions the program trapped in
// into findings, each fixed by restoring the function.
func RemovedFindings(res *vm.Result) []Finding {
	var out []Finding
	for _, r := range res.Removed {
		out = append(out, Finding{Kind: RemovedFunction, Subject: r.String(), Evidence: "the kernel: " + r.Fault, Restore: r.Entry()})
	}
	return out
}

// SeccompFindings turns the syscalls the guest's seccomp filter reported
// into findings: each is added to the allowlist by a fix, but a syscall
// of another ABI, which the x86-64 allowlist cannot name.
func SeccompFindings(events []vm.SeccompEvent) []Finding {
	var out []Finding
	for _, e := range events {
		fd := Finding{Kind: SeccompDenial, Subject: e.Syscall, Evidence: e.String()}
		if e.Nr < 0 {
			fd.Subject = "another ABI"
			fd.Hint = "bespoke's allowlist holds x86-64 syscalls only: build with --seccomp log or off to let the program make it"
		} else {
			fd.Allow = e.Syscall
		}
		out = append(out, fd)
	}
	return out
}

func indexPaths(m *manifest.Manifest) map[string]manifest.Path {
	idx := map[string]manifest.Path{}
	for _, p := range m.Paths {
		idx[p.Path] = p
	}
	return idx
}

func kernelPath(p string) bool {
	return p == "/proc" || p == "/sys" || strings.HasPrefix(p, "/proc/") || strings.HasPrefix(p, "/sys/")
}

func kernelPathFinding(p manifest.Path, enabled func(string) bool) Finding {
	fd := Finding{Kind: MissingKernelPath, Subject: p.Path,
		Evidence: "absent in the guest; present on the host while tracing"}
	return withSymbols(fd, &manifest.Manifest{ProcSys: []string{p.Path}}, enabled)
}

// withSymbols fills in the Kconfig symbols that provide the facts of m and
// are off in the image, from the feature knowledge.
func withSymbols(fd Finding, m *manifest.Manifest, enabled func(string) bool) Finding {
	a := features.Analyze(m)
	var on []string
	for _, r := range a.Required {
		if enabled(r.Symbol) {
			on = append(on, "CONFIG_"+r.Symbol)
		} else {
			fd.Enable = append(fd.Enable, r.Symbol)
		}
	}
	switch {
	case len(fd.Enable) > 0:
	case len(on) > 0:
		fd.Hint = fmt.Sprintf("the kernel has %s already, which the feature knowledge says provides it: a dependency may be missing (see the image's config)", strings.Join(on, ", "))
	case len(a.Gaps) > 0:
		fd.Hint = a.Gaps[0].Reason
	default:
		fd.Hint = "no Kconfig symbol for it in the feature knowledge (internal/features): find the option and add a row"
	}
	return fd
}

func kindOf(fi fs.FileInfo) string {
	switch t := fi.Mode().Type(); {
	case t.IsDir():
		return "directory"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}
