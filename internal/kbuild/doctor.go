package kbuild

import (
	"os"
	"os/exec"
	"strings"
)

// A Check is one host requirement of bespoke: a command on PATH or a file.
type Check struct {
	Name     string // what the user sees: "gcc", "libelf-dev"
	Command  string // a program looked up on PATH, or
	File     string // files of which one must exist ("a|b")
	Package  string // the Debian package that provides it
	Required bool   // false: used when present (ccache)
	For      string // what needs it
}

// Checks are the host tools a kernel build and a boot need.
var Checks = []Check{
	{Name: "gcc", Command: "gcc", Package: "gcc", Required: true, For: "compiling the kernel"},
	{Name: "make", Command: "make", Package: "make", Required: true, For: "driving Kbuild"},
	{Name: "ld", Command: "ld", Package: "binutils", Required: true, For: "linking vmlinux"},
	{Name: "flex", Command: "flex", Package: "flex", Required: true, For: "Kconfig's lexer"},
	{Name: "bison", Command: "bison", Package: "bison", Required: true, For: "Kconfig's parser"},
	{Name: "bc", Command: "bc", Package: "bc", Required: true, For: "kernel/time constants"},
	{Name: "perl", Command: "perl", Package: "perl", Required: true, For: "kernel build scripts"},
	{Name: "libelf-dev", File: "/usr/include/libelf.h|/usr/include/gelf.h", Package: "libelf-dev", Required: true, For: "objtool (x86_64)"},
	{Name: "libssl-dev", File: "/usr/include/openssl/opensslv.h", Package: "libssl-dev", Required: true, For: "kernel signing tools"},
	{Name: "cpio", Command: "cpio", Package: "cpio", Required: true, For: "initramfs"},
	{Name: "xz", Command: "xz", Package: "xz-utils", Required: true, For: "unpacking kernel source, compressing initramfs"},
	{Name: "zstd", Command: "zstd", Package: "zstd", Required: true, For: "compressing the kernel (KERNEL_ZSTD)"},
	{Name: "mkfs.erofs", Command: "mkfs.erofs", Package: "erofs-utils", Required: true, For: "the erofs root (--root erofs)"},
	{Name: "mkfs.ext4", Command: "mkfs.ext4", Package: "e2fsprogs", Required: true, For: "state volumes (bespoke run -v)"},
	{Name: "qemu-system-x86_64", Command: "qemu-system-x86_64", Package: "qemu-system-x86", Required: true, For: "booting images"},
	{Name: "linux-source-6.12", File: "/usr/src/linux-source-6.12.tar.xz", Package: "linux-source-6.12", Required: true, For: "the default kernel source"},
	{Name: "ccache", Command: "ccache", Package: "ccache", Required: false, For: "faster rebuilds (optional)"},
	{Name: "clang", Command: "clang-14", Package: "clang-14", Required: false, For: "--kernel-dce (optional; also lld-14 and llvm-14)"},
	{Name: "ld.lld", Command: "ld.lld-14", Package: "lld-14", Required: false, For: "--kernel-dce (optional)"},
}

// CheckResult is a Check's outcome on this host.
type CheckResult struct {
	Check
	Found string // the path found, "" when missing
}

// Host is how checks look at the machine; tests pass fakes.
type Host struct {
	LookPath func(string) (string, error) // exec.LookPath
	Stat     func(string) error           // os.Stat's error
}

// DefaultHost looks at the real machine.
var DefaultHost = Host{
	LookPath: exec.LookPath,
	Stat:     func(p string) error { _, err := os.Stat(p); return err },
}

// Doctor runs checks on h.
func Doctor(h Host, checks []Check) []CheckResult {
	var res []CheckResult
	for _, c := range checks {
		r := CheckResult{Check: c}
		if c.Command != "" {
			if p, err := h.LookPath(c.Command); err == nil {
				r.Found = p
			}
		}
		for _, f := range strings.Split(c.File, "|") {
			if f != "" && r.Found == "" && h.Stat(f) == nil {
				r.Found = f
			}
		}
		res = append(res, r)
	}
	return res
}

// InstallCommand returns the apt-get command that installs the missing
// checks, required ones first when required is true, else the optional
// ones; "" when nothing is missing.
func InstallCommand(res []CheckResult, required bool) string {
	var pkgs []string
	seen := map[string]bool{}
	for _, r := range res {
		if r.Found == "" && r.Required == required && !seen[r.Package] {
			seen[r.Package] = true
			pkgs = append(pkgs, r.Package)
		}
	}
	if len(pkgs) == 0 {
		return ""
	}
	return "apt-get install -y " + strings.Join(pkgs, " ")
}
