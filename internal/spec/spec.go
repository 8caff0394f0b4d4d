// Package spec reads bespoke.yaml, the file that describes one application
// image: the program and its arguments, its user and environment, the ports
// it serves, how to tell it is ready, the workload that exercises it, the
// virtual machine it targets, and build-time setup for real servers.
//
// Load and Parse read a file and check it; FromArgs builds the same Spec
// from command-line flags. Errors name the file and line
// ("bespoke.yaml:7: unknown field "prots" (did you mean "ports"?)").
// Relative host paths are resolved against the spec file's directory.
//
// Placeholders ({host}, {port}, {port:GUEST}, {state}) in cmd, env,
// workload and setup are filled in by Vars.Expand, the one place that
// knows the rules; docs/spec.md describes them for users.
package spec

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FileName is the spec's conventional file name.
const FileName = "bespoke.yaml"

// Targets: the virtual machine the image's kernel is configured for. They
// match the target names of internal/vm.
const (
	TargetMicrovm     = "qemu-microvm"
	TargetPC          = "qemu-pc"
	TargetFirecracker = "firecracker"
)

// Targets lists the valid targets, the default first.
var Targets = []string{TargetMicrovm, TargetPC, TargetFirecracker}

// Kernel optimisation levels.
const (
	OptO2   = "o2"   // -O2 (CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE)
	OptSize = "size" // -Os (CONFIG_CC_OPTIMIZE_FOR_SIZE)
	// OptPGO is -O2 recompiled with a profile of the kernel under the
	// workload; translation units the workload never ran are compiled
	// for size (docs/pgo.md).
	OptPGO = "pgo"
)

// Root filesystems of an image (they match internal/initramfs's formats
// and internal/kconfig's roots).
const (
	// RootErofs is a read-only erofs disk the guest reads on demand, with
	// a tmpfs overlay for writes.
	RootErofs = "erofs"
	// RootInitramfs is an xz initramfs unpacked into RAM at boot.
	RootInitramfs = "initramfs"
)

// Data modes (Spec.Data).
const (
	DataTrees  = "trees"  // traced files and the data trees the program loads by name
	DataTraced = "traced" // traced files only
)

// DataModes lists the data modes.
var DataModes = []string{DataTrees, DataTraced}

// Library shaking modes (Spec.ShakeLibs).
const (
	ShakeStatic  = "static"  // remove the functions nothing can reach (internal/libshake)
	ShakeProfile = "profile" // remove the functions that did not run while traced
	ShakeOff     = "off"     // copy libraries and programs whole
)

// ShakeModes lists the library shaking modes.
var ShakeModes = []string{ShakeStatic, ShakeProfile, ShakeOff}

// Seccomp modes (they match internal/guestinit/protocol's).
const (
	SeccompEnforce = "enforce" // the syscall fails with ENOSYS
	SeccompLog     = "log"     // the syscall runs; the guest reports it
	SeccompOff     = "off"     // no filter
)

// SeccompModes lists the seccomp modes.
var SeccompModes = []string{SeccompEnforce, SeccompLog, SeccompOff}

// SeccompDefault is the mode of a spec that sets none: log for a program
// that serves ports (its kernel has the network, which Linux's seccomp
// filter needs), off for one without.
func (sp *Spec) SeccompDefault() string {
	if sp.Seccomp != "" {
		return sp.Seccomp
	}
	if len(sp.Ports) > 0 {
		return SeccompLog
	}
	return SeccompOff
}

// Roots lists the root filesystems, the default first.
var Roots = []string{RootErofs, RootInitramfs}

// Compressions lists, per root, its compressions, the default first
// (internal/initramfs's ErofsCompressions and the initramfs's xz).
var Compressions = map[string][]string{
	RootErofs:     {"lz4hc", "lzma"},
	RootInitramfs: {"xz"},
}

// Defaults filled in for fields a spec leaves out.
const (
	DefaultRoot            = RootErofs
	DefaultData            = DataTrees
	DefaultShakeLibs       = ShakeOff
	DefaultTarget          = TargetMicrovm
	DefaultMemoryMB        = 256
	DefaultCPUs            = 1
	DefaultOpt             = OptO2
	DefaultStopSignal      = "SIGTERM"
	DefaultStopTimeout     = 10 * time.Second
	DefaultReadyTimeout    = 60 * time.Second
	DefaultWorkloadTimeout = 5 * time.Minute
	DefaultDirMode         = fs.FileMode(0o755)
)

// Spec describes one application image.
type Spec struct {
	// File is the spec file as given to Load or Parse; "" for FromArgs.
	File string
	// Dir is the absolute directory relative host paths resolve against:
	// the spec file's directory, or the working directory for FromArgs.
	Dir string

	// Name names the image; by default the base name of Cmd[0].
	Name string
	// Cmd is the program and its arguments. Cmd[0] is looked up in $PATH
	// on the host when it holds no slash.
	Cmd []string
	// Env is added to the program's environment.
	Env map[string]string
	// User runs the program; nil means root.
	User *User
	// Workdir is the program's working directory in the guest; "" means "/".
	Workdir string
	// Include lists host paths (absolute, cleaned) copied into the image
	// at the same path, directories whole.
	Include []string
	// Exclude lists glob patterns of paths never copied (see Excluded).
	Exclude []string
	// Ports are the guest ports the program serves, sorted by port then
	// protocol. A tcp ready port is always among them.
	Ports []Port
	// Ready says when the program is ready to serve.
	Ready Ready
	// Workload is a shell command run on the host against the program.
	Workload string
	// WorkloadRequests is how many requests the workload makes, or
	// WorkloadRequestsFrom a regular expression with one group around a
	// number in its output, every match summed (the client's own count):
	// bespoke bench --model reports its counts per request. Neither:
	// unknown.
	WorkloadRequests     int
	WorkloadRequestsFrom string

	// Target is the virtual machine: TargetMicrovm, TargetPC or TargetFirecracker.
	Target string
	// Root is the image's root filesystem: RootErofs or RootInitramfs.
	Root string
	// Compression is the root's: one of Compressions[Root], the first
	// when empty (erofs: lz4hc, fastest to read, or lzma, a third
	// smaller; initramfs: xz).
	Compression string
	// Data is which data the image holds beyond the program's closure:
	// DataTrees (the default: the traced files, and whole the data trees
	// the program loads by name, internal/datatrees) or DataTraced (the
	// traced files only).
	Data string
	// ShakeLibs is ShakeStatic (the image's copies of its programs and
	// libraries have the functions nothing can reach overwritten with
	// int3), ShakeProfile (the functions that did not run while the trace
	// ran the workload) or ShakeOff (the default).
	ShakeLibs string
	// ShakeRemove are functions removed even if reachable, each
	// "FILE:FUNCTION" (a guest path and a symbol name): a path known to be
	// dead, or a planted fault for verify to find.
	ShakeRemove []string
	// MemoryMB and CPUs size the virtual machine.
	MemoryMB int
	CPUs     int
	// Kernel tunes the kernel build.
	Kernel Kernel
	// Seccomp is what the guest init's filter does with a syscall the
	// program made outside its allowlist (its trace's syscalls and
	// SeccompAllow): SeccompEnforce, SeccompLog or SeccompOff; ""
	// chooses SeccompDefault.
	Seccomp      string
	SeccompAllow []string

	// Setup are shell commands run on the host at build time, before
	// tracing, to prepare data in the state directory ({state}).
	Setup []string
	// Dirs are directories the guest init creates before starting the program.
	Dirs []Dir
	// Rlimits maps resource names ("NOFILE", "NPROC", ...) to the value
	// set as both soft and hard limit; Unlimited means no limit.
	Rlimits map[string]uint64
	// StopSignal is the signal that asks the program to stop ("SIGTERM").
	StopSignal string
	// StopTimeout is how long to wait after StopSignal before SIGKILL.
	StopTimeout time.Duration
	// ReadyTimeout is how long to wait for the program to become ready.
	ReadyTimeout time.Duration
	// WorkloadTimeout is how long the workload may run.
	WorkloadTimeout time.Duration

	// lines maps a field's key ("ports", "kernel.enable") to its line in File.
	lines map[string]int
	// readyRef is the placeholder of "ready: tcp:{port}" until Validate
	// resolves it into Ready.Port.
	readyRef string
}

// User is the account the program runs as. The host's /etc/passwd and
// /etc/group supply what is not given; the account is written into the
// image's /etc/passwd and /etc/group.
type User struct {
	Name string
	UID  *int // nil: the host's uid for Name
	GID  *int // nil: the host's gid for Name (or UID when Name is unknown)
	Home string
}

// Port is a guest port the program serves.
type Port struct {
	Port  int
	Proto string // "tcp" or "udp"
}

func (p Port) String() string { return fmt.Sprintf("%d/%s", p.Port, p.Proto) }

// Ready kinds.
const (
	ReadyNone = ""    // any forwarded TCP port accepting; with none, the program's start
	ReadyTCP  = "tcp" // a guest TCP port accepts and keeps a connection
	ReadyLog  = "log" // a line of the program's output matches a regular expression
)

// Ready says when the program is ready to serve.
type Ready struct {
	Kind  string // ReadyNone, ReadyTCP or ReadyLog
	Port  int    // ReadyTCP: the guest port
	Regex string // ReadyLog: a Go regular expression
}

// String returns the form internal/vm's Image.Ready takes: "tcp:6379",
// "log:REGEX" or "".
func (r Ready) String() string {
	switch r.Kind {
	case ReadyTCP:
		return "tcp:" + strconv.Itoa(r.Port)
	case ReadyLog:
		return "log:" + r.Regex
	}
	return ""
}

// OnHost returns r for a run where each guest port listens on ports[guest]
// (Spec.TracePorts while tracing, the forwarded host ports for a booted
// image): a tcp port is replaced by its mapping, when there is one.
func (r Ready) OnHost(ports map[int]int) Ready {
	if p, ok := ports[r.Port]; ok && r.Kind == ReadyTCP {
		r.Port = p
	}
	return r
}

// Kernel tunes the kernel build.
type Kernel struct {
	// Source is a kernel source tree or tarball (absolute); "" means the
	// default (Debian's linux-source).
	Source string
	// Enable and Disable are Kconfig symbols without the CONFIG_ prefix,
	// added to or removed from what the trace asks for.
	Enable  []string
	Disable []string
	// Opt is OptO2, OptSize or OptPGO.
	Opt string
	// ShakeSyscalls removes from the syscall table the syscalls neither
	// the program (its trace) nor the guest init makes: they return
	// ENOSYS. KeepSyscalls (names, e.g. "io_uring_setup") are kept too,
	// and imply ShakeSyscalls.
	ShakeSyscalls bool
	KeepSyscalls  []string
	// March is GCC's -march for the kernel ("x86-64-v3", "native"); ""
	// keeps the kernel's generic x86-64.
	March string
	// DCE removes from vmlinux the code and data nothing refers to: the
	// kernel is compiled with Clang ThinLTO and linked with --gc-sections
	// (internal/kdce; needs clang, lld and llvm). Not with OptPGO, whose
	// profile is GCC's.
	DCE bool
	// PGOHotFlags are GCC options added to the translation units a
	// profile-guided kernel compiles with the profile (e.g.
	// -fno-unroll-loops): docs/perf.md measures them.
	PGOHotFlags []string
}

// Dir is a directory the guest init creates at boot.
type Dir struct {
	Path  string      // absolute guest path
	Owner string      // "USER", "USER:GROUP" or "UID:GID"; "" means the program's user
	Mode  fs.FileMode // permission bits, default DefaultDirMode
}

// Unlimited is an rlimit with no limit (RLIM_INFINITY).
const Unlimited = ^uint64(0)

// Load reads and checks the spec file at path.
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("reading spec: %s does not exist: write one (see docs/spec.md) or give the program after --", path)
		}
		return nil, fmt.Errorf("reading spec: %w", err)
	}
	return Parse(path, data)
}

// Parse reads and checks a spec. name is the file's path: it appears in
// errors, and relative host paths resolve against its directory.
func Parse(name string, data []byte) (*Spec, error) {
	dir, err := filepath.Abs(filepath.Dir(name))
	if err != nil {
		return nil, fmt.Errorf("reading spec: %w", err)
	}
	sp, err := decode(name, dir, data)
	if err != nil {
		return nil, err
	}
	if err := sp.Validate(); err != nil {
		return nil, err
	}
	return sp, nil
}

// Line returns the line in File where key is set ("ports", "user",
// "kernel.enable", "dirs.1"), or 0 when unknown.
func (sp *Spec) Line(key string) int { return sp.lines[key] }

// where returns the position for an error about key: "FILE:LINE", "FILE",
// or "" for a spec not read from a file.
func (sp *Spec) where(key string) string {
	if sp.File == "" {
		return ""
	}
	for k := key; ; {
		if l := sp.lines[k]; l > 0 {
			return fmt.Sprintf("%s:%d", sp.File, l)
		}
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return sp.File
}

// errorf returns an error about key, prefixed with its position.
func (sp *Spec) errorf(key, format string, args ...any) error {
	return posErrorf(sp.where(key), format, args...)
}

func posErrorf(where, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if where == "" {
		return fmt.Errorf("spec: %s", msg)
	}
	return fmt.Errorf("%s: %s", where, msg)
}

// Excluded reports whether the absolute path p matches an Exclude pattern.
// A pattern with a slash matches the whole path or one of its parent
// directories ("/usr/share/doc" excludes everything below it); a pattern
// without a slash matches any single path element ("*.pyc").
func (sp *Spec) Excluded(p string) bool {
	p = filepath.Clean(p)
	for _, pat := range sp.Exclude {
		if strings.Contains(pat, "/") {
			pat = filepath.Clean(pat)
			for q := p; ; q = filepath.Dir(q) {
				if ok, _ := filepath.Match(pat, q); ok {
					return true
				}
				if q == "/" || q == "." {
					break
				}
			}
			continue
		}
		for _, el := range strings.Split(p, "/") {
			if ok, _ := filepath.Match(pat, el); ok && el != "" {
				return true
			}
		}
	}
	return false
}

// StateDir returns the state directory for the image name under bespoke's
// cache directory (ksrc.CacheDir): the value of {state}, the same absolute
// path on the host while building and in the guest.
func StateDir(cacheDir, name string) string {
	return filepath.Join(cacheDir, "state", name)
}

// SharedStateRoot holds the state directories that other users could not
// reach under the cache directory.
const SharedStateRoot = "/var/lib/bespoke/state"

// StateDirFor returns the state directory for the image name:
// StateDir(cacheDir, name) when every user may search the directories above
// it, else, when bespoke runs as root, SharedStateRoot/name. Setup commands
// and the traced program run as the spec's user, and a server started as
// root may serve its files from workers that switched to another account
// (Apache's User), so the state directory must be open to every account;
// root's default cache, /root/.cache/bespoke, lies in a 0700 home. Without
// root, bespoke runs everything as itself and keeps its own cache.
func StateDirFor(cacheDir, name string) string {
	dir := StateDir(cacheDir, name)
	if os.Geteuid() != 0 || searchable(filepath.Dir(dir)) {
		return dir
	}
	return filepath.Join(SharedStateRoot, name)
}

// searchable reports whether every user may search dir and every directory
// above it (the "other" execute bit). Directories that do not exist yet
// count as searchable: bespoke creates them 0755.
func searchable(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}
