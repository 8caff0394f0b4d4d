// Package image builds an image directory for one program: it runs the
// whole pipeline (trace, kernel config, kernel build, initramfs, smoke boot)
// and writes a self-describing directory that `bespoke run` boots.
//
// An image directory holds bzImage, vmlinux, initramfs.cpio.xz, config
// (the kernel's .config), System.map, manifest.json, image.json (what
// `bespoke run` reads), build.log, console.log and report.json. A build
// assembles the directory beside the output and renames it into place at
// the end, so a failed build leaves the last good image intact.
package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/bespoke-os/bespoke/internal/atomicdir"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/bespoke-os/bespoke/internal/child"
	"github.com/bespoke-os/bespoke/internal/datatrees"
	"github.com/bespoke-os/bespoke/internal/features"
	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/bespoke-os/bespoke/internal/initramfs"
	"github.com/bespoke-os/bespoke/internal/kbuild"
	"github.com/bespoke-os/bespoke/internal/kconfig"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/libshake"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/trace"
	"github.com/bespoke-os/bespoke/internal/vm"
	"golang.org/x/sys/unix"
)

// File names in an image directory.
const (
	KernelFile    = "bzImage"
	VmlinuxFile   = "vmlinux"
	InitramfsFile = "initramfs.cpio.xz"
	// RootFile is the root of an image built with --root erofs (the
	// default) in place of the initramfs: a read-only erofs disk image.
	RootFile      = "root.erofs"
	ConfigFile    = "config"
	SystemMapFile = "System.map"
	ManifestFile  = "manifest.json"
	ReportFile    = "report.json"
	BuildLogFile  = "build.log"
	KernelMeta    = "kernel-build.json"
	// SpecFile is the spec the image was built from, as JSON: what
	// bespoke verify reads for the workload, and rebuilds with.
	SpecFile = "spec.json"
	// FixesFile is the image's derived state: what bespoke verify --fix
	// added beyond the spec and the trace. A later build into the same
	// directory keeps it.
	FixesFile = "fixes.json"
)

// Fixes are files and kernel options added to an image beyond what its
// spec and trace ask for, each with the reason.
type Fixes struct {
	Include []Fix `json:"include,omitempty"` // host paths, copied at the same path
	Enable  []Fix `json:"enable,omitempty"`  // Kconfig symbols without CONFIG_
	// Keep are syscalls kept in a shaken syscall table (kernel.keep_syscalls).
	Keep []Fix `json:"keep_syscalls,omitempty"`
	// Seccomp are syscalls added to the seccomp allowlist (seccomp_allow).
	Seccomp []Fix `json:"seccomp_allow,omitempty"`
	// ShakeKeep are removed functions restored, FILE:FUNCTION.
	ShakeKeep []Fix `json:"shake_keep,omitempty"`
}

// All returns every fix, files first, then options, kept syscalls and allowed ones.
func (f *Fixes) All() []Fix {
	return slices.Concat(f.Include, f.Enable, f.Keep, f.Seccomp, f.ShakeKeep)
}

// Fix is one added file or symbol.
type Fix struct {
	What string `json:"what"`
	Why  string `json:"why"`
}

// Apply returns a copy of sp with the fixes in it: their files included,
// options enabled (and no longer disabled), syscalls kept in a shaken
// table and allowed by the seccomp filter.
func (f *Fixes) Apply(sp *spec.Spec) *spec.Spec {
	out := *sp
	out.Include = append(slices.Clone(sp.Include), whats(f.Include)...)
	out.Kernel.Enable = append(slices.Clone(sp.Kernel.Enable), whats(f.Enable)...)
	if len(f.Keep) > 0 {
		out.Kernel.KeepSyscalls = append(slices.Clone(sp.Kernel.KeepSyscalls), whats(f.Keep)...)
	}
	out.SeccompAllow = append(slices.Clone(sp.SeccompAllow), whats(f.Seccomp)...)
	out.Kernel.Disable = slices.DeleteFunc(slices.Clone(sp.Kernel.Disable), func(d string) bool {
		return slices.Contains(out.Kernel.Enable, d)
	})
	return &out
}

// ReadFixes reads dir/fixes.json; an image without one has no fixes.
func ReadFixes(dir string) (*Fixes, error) {
	f := &Fixes{}
	data, err := os.ReadFile(filepath.Join(dir, FixesFile))
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err == nil {
		err = json.Unmarshal(data, f)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the fixes of %s: %w", dir, err)
	}
	return f, nil
}

// Write writes f as dir/fixes.json.
func (f *Fixes) Write(dir string) error { return writeJSON(filepath.Join(dir, FixesFile), f) }

// Empty reports whether f adds nothing.
func (f *Fixes) Empty() bool { return f == nil || len(f.All()) == 0 }

func whats(fs []Fix) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.What)
	}
	return out
}

// ReadSpec reads the spec an image was built from (spec.json).
func ReadSpec(dir string) (*spec.Spec, error) {
	data, err := os.ReadFile(filepath.Join(dir, SpecFile))
	if err != nil {
		return nil, fmt.Errorf("reading the spec of image %s: %w (images built before bespoke verify existed lack it: rebuild with 'bespoke build')", dir, err)
	}
	sp := &spec.Spec{}
	if err := json.Unmarshal(data, sp); err != nil {
		return nil, fmt.Errorf("reading the spec of image %s: %w", dir, err)
	}
	return sp, nil
}

// Options says what Build builds.
type Options struct {
	Spec *spec.Spec
	// Out is the image directory; it is replaced only when the build succeeds.
	Out string
	// CacheDir is bespoke's cache ("" means ksrc.CacheDir()).
	CacheDir string
	// Manifest, when set, is used instead of tracing the program (the
	// manifest of an earlier trace, e.g. `bespoke trace -o`).
	Manifest *manifest.Manifest
	// KernelFrom, when set, is an image directory whose kernel is reused
	// instead of building one. Its config must enable every option the
	// new program requires.
	KernelFrom string
	// NoBoot skips the smoke boot.
	NoBoot bool
	// SizeReport, with a profile-guided kernel, also builds the same
	// config -Os, with the profile but cold units -O2, and (with a shaken
	// syscall table) unshaken, and records their sizes (report.pgo.variants).
	SizeReport bool
	// Accel is the QEMU accelerator for the smoke boot ("" means auto).
	Accel string
	// Progress receives one line per stage and the summary; Terminal
	// says it is a terminal (the kernel build then rewrites one line).
	Progress io.Writer
	Terminal bool
	// Jobs is make -j for the kernel (0: the number of CPUs).
	Jobs int
	// Fixes are added to what the spec asks for; nil means the fixes of
	// the image already in Out, if any (see FixesFile).
	Fixes *Fixes
	// FromFlags names the spec fields that command-line flags set over
	// the spec file's (spec.Flags.Override), for the build log.
	FromFlags []string
}

// Report is report.json: what the image holds and what building it took.
type Report struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	// Bytes: the kernel, the initramfs, and both (what a VM loads).
	KernelBytes    int64             `json:"kernel_bytes"`
	InitramfsBytes int64             `json:"initramfs_bytes"`
	TotalBytes     int64             `json:"total_bytes"`
	KernelSymbols  int               `json:"kernel_symbols"` // =y in the .config
	Kernel         *kbuild.Meta      `json:"kernel"`
	Initramfs      *initramfs.Report `json:"initramfs"`
	Stages         []Stage           `json:"stages"`
	Boot           *Boot             `json:"boot,omitempty"`
	// PGO is what --optimize pgo did.
	PGO *PGO `json:"pgo,omitempty"`
	// Syscalls is what kernel.shake_syscalls removed.
	Syscalls *SyscallShake `json:"syscalls,omitempty"`
	// Fixes are what the image holds beyond its spec and trace (fixes.json).
	Fixes    *Fixes    `json:"fixes,omitempty"`
	Workload *Workload `json:"workload,omitempty"`
	// Seccomp is the guest's seccomp filter on the program.
	Seccomp *vm.Seccomp `json:"seccomp,omitempty"`
	// DataTrees are the data trees the image holds whole (spec data:
	// trees), with why each was pulled in.
	DataTrees []datatrees.Pulled `json:"data_trees,omitempty"`
	// Shake is what --shake-libs removed from the root's programs and
	// libraries.
	Shake *ShakeReport `json:"shake,omitempty"`
	// NotInImage are, per Debian package of the image's programs, the
	// files it ships under /etc and /usr/share that the image does not
	// hold: what a client or config may ask for that the workload did not.
	NotInImage []datatrees.Package `json:"not_in_image,omitempty"`
	// Gaps are facts of the trace no kernel option provides (from the
	// feature knowledge), e.g. a syscall Linux 6.12 no longer has.
	Gaps []string `json:"gaps,omitempty"`
	// MinMemoryMB is the smallest memory with which the image passes its
	// workload, as bespoke min-memory found it (0: not measured).
	MinMemoryMB int `json:"min_memory_mb,omitempty"`
}

// Stage is one pipeline stage with its duration.
type Stage struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Detail  string  `json:"detail,omitempty"`
}

// Boot is what the smoke boot measured, in seconds from QEMU's start
// (host) or from the guest kernel's start (guest).
type Boot struct {
	Accel       string  `json:"accel"`
	InitHost    float64 `json:"init_host"`
	InitGuest   float64 `json:"init_guest"`
	ReadyHost   float64 `json:"ready_host,omitempty"`
	ReadyBy     string  `json:"ready_by,omitempty"`
	ExitCode    int     `json:"exit_code"`
	TotalHost   float64 `json:"total_host"`
	ConsoleLog  string  `json:"console_log"`
	ProgramExit bool    `json:"program_exited"` // the program ended by itself during the boot
	// StopExitCode is the program's status after bespoke asked it to stop
	// (its stop signal) once the workload was done; -1 when it did not
	// stop by itself. 0 is a clean shutdown.
	StopExitCode *int `json:"stop_exit_code,omitempty"`
	// Seccomp are the syscalls the program made outside its seccomp
	// allowlist during the boot.
	Seccomp []vm.SeccompEvent `json:"seccomp,omitempty"`
	// State is the room of the program's state directory at start, and
	// StateFull its room when it filled up during the boot.
	State     *protocol.StateInfo `json:"state,omitempty"`
	StateFull *protocol.StateInfo `json:"state_full,omitempty"`
}

// Workload is the workload's result against the booted image.
type Workload struct {
	Command  string  `json:"command"`
	ExitCode int     `json:"exit_code"`
	Seconds  float64 `json:"seconds"`
	Output   string  `json:"output,omitempty"` // the last lines
	// Full is the whole output (bespoke bench's --metric reads it), not
	// kept in report.json.
	Full string `json:"-"`
}

// builder carries one build's state between stages.
type builder struct {
	// restored are the functions a profile removed that the smoke boot
	// ran (FILE:FUNCTION), and hit those of the last boot.
	restored []string
	hit      []libshake.Removal

	opts    Options
	sp      *spec.Spec
	cache   string
	tools   kernelTools // the kernel builds' compiler and make variables
	stage   string      // the staging directory
	log     *os.File
	report  Report
	stageNo int
	stages  int
	// removeSyscalls are the syscall numbers every kernel of the image is
	// built without (kernel.shake_syscalls).
	removeSyscalls []int
	// march is the -march of the image's kernel (the spec's, or that of
	// the image whose kernel it reuses).
	march string
}

// Build runs the pipeline and returns the report of the new image.
func Build(ctx context.Context, opts Options) (*Report, error) {
	if opts.Spec == nil || opts.Out == "" {
		return nil, errors.New("building image: a spec and an output directory are required")
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if len(opts.Spec.Kernel.PGOHotFlags) > 0 && opts.Spec.Kernel.Opt != spec.OptPGO {
		return nil, errors.New("building image: kernel.pgo_hot_flags apply to a profile-guided kernel: add --optimize pgo (or kernel.opt: pgo)")
	}
	b := &builder{opts: opts, sp: opts.Spec, stages: 5, march: opts.Spec.Kernel.March}
	if opts.NoBoot {
		b.stages--
	}
	if len(b.sp.Setup) > 0 && opts.Manifest == nil {
		b.stages++
	}
	if b.sp.Kernel.Opt == spec.OptPGO {
		if opts.KernelFrom != "" {
			return nil, errors.New("building image: --optimize pgo builds its own kernel: drop --kernel-from")
		}
		b.stages++
	}
	b.report.Name, b.report.Target = b.sp.Name, b.sp.Target
	var err error
	if b.cache = opts.CacheDir; b.cache == "" {
		if b.cache, err = ksrc.CacheDir(); err != nil {
			return nil, err
		}
	}
	if err := checkOut(opts.Out); err != nil {
		return nil, err
	}
	if b.opts.Fixes == nil {
		if b.opts.Fixes, err = ReadFixes(opts.Out); err != nil {
			return nil, err
		}
		if !b.opts.Fixes.Empty() {
			fmt.Fprintf(opts.Progress, "keeping the fixes of the image in %s (%s): %s\n", opts.Out, FixesFile,
				strings.Join(whats(b.opts.Fixes.All()), ", "))
		}
	}
	if !b.opts.Fixes.Empty() {
		b.sp = b.opts.Fixes.Apply(b.sp)
		b.report.Fixes = b.opts.Fixes
	}
	if err := b.sp.CheckHost("/etc"); err != nil {
		return nil, err
	}
	// What can be checked before minutes of tracing is checked now.
	if opts.KernelFrom != "" {
		if _, _, err := kernelFromImage(opts.KernelFrom, b.sp.Target, "kernel-from"); err != nil {
			return nil, err
		}
	}
	if b.stage, err = atomicdir.Stage(opts.Out); err != nil {
		return nil, fmt.Errorf("building image: %w", err)
	}
	defer atomicdir.Discard(b.stage) // gone after the rename on success
	if b.log, err = os.Create(filepath.Join(b.stage, BuildLogFile)); err != nil {
		return nil, fmt.Errorf("building image: %w", err)
	}
	defer b.log.Close()
	if len(opts.FromFlags) > 0 {
		line := fmt.Sprintf("spec %s, with %s from the command line\n", b.sp.File, strings.Join(opts.FromFlags, ", "))
		fmt.Fprint(b.log, line)
		fmt.Fprint(opts.Progress, line)
	}
	// The log's final path, named in every error.
	logPath := filepath.Join(opts.Out, BuildLogFile)
	if err := b.run(ctx); err != nil {
		kept := b.keepLog()
		// Paths in the staging directory are in OUT.failed now.
		err = &movedError{strings.ReplaceAll(err.Error(), b.stage, b.failedDir()), err}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("build interrupted; the previous image in %s is intact; log: %s", opts.Out, kept)
		}
		return nil, fmt.Errorf("%w\n(build log: %s; the previous image in %s, if any, is intact)", err, kept, opts.Out)
	}
	b.log.Close()
	if err := atomicdir.Replace(b.stage, opts.Out); err != nil {
		return nil, fmt.Errorf("building image: %w", err)
	}
	b.summary(logPath)
	return &b.report, nil
}

// keepLog keeps the logs of a failed build (build.log and the consoles of
// its boots) in OUT.failed/, beside the output, where the build's error
// messages say they are, so that they survive the staging directory.
func (b *builder) keepLog() string {
	dir := b.failedDir()
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return b.log.Name()
	}
	ents, _ := os.ReadDir(b.stage)
	for _, e := range ents {
		if e.Type().IsRegular() && (strings.HasSuffix(e.Name(), ".log") || e.Name() == ReportFile || e.Name() == ManifestFile) {
			atomicdir.CopyFile(filepath.Join(b.stage, e.Name()), filepath.Join(dir, e.Name()))
		}
	}
	return filepath.Join(dir, BuildLogFile)
}

// movedError is an error whose message names paths where they are now.
type movedError struct {
	msg string
	err error
}

func (e *movedError) Error() string { return e.msg }
func (e *movedError) Unwrap() error { return e.err }

// failedDir is where the logs of a failed build are kept.
func (b *builder) failedDir() string { return b.opts.Out + ".failed" }

// failedLog is the path a log of the stage has once the build failed.
func (b *builder) failedLog(name string) string { return filepath.Join(b.failedDir(), name) }

func (b *builder) run(ctx context.Context) error {
	state := spec.StateDirFor(b.cache, b.sp.Name)
	m := b.opts.Manifest
	if m == nil {
		if len(b.sp.Setup) > 0 {
			if err := b.do("setup", func() (string, error) { return b.setup(ctx, state) }); err != nil {
				return err
			}
		}
		if err := b.do("trace", func() (string, error) {
			var err error
			m, err = b.traceState(ctx, state)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d syscalls, %d files, %d libraries", len(m.Syscalls), len(m.Files), len(m.Closure)), nil
		}); err != nil {
			return err
		}
	}
	if err := m.WriteFile(filepath.Join(b.stage, ManifestFile)); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(b.stage, SpecFile), b.opts.Spec); err != nil {
		return err
	}
	if !b.opts.Fixes.Empty() {
		if err := b.opts.Fixes.Write(b.stage); err != nil {
			return err
		}
	}
	if err := b.do("kernel", func() (string, error) { return b.kernel(ctx, m) }); err != nil {
		return err
	}
	if err := b.do("initramfs", func() (string, error) { return b.initramfs(ctx, m, state) }); err != nil {
		return err
	}
	img := &vm.Image{
		Name:           b.sp.Name,
		Target:         b.sp.Target,
		Kernel:         KernelFile,
		MemoryMB:       b.sp.MemoryMB,
		CPUs:           b.sp.CPUs,
		Ready:          b.sp.Ready.String(),
		Cmdline:        GuestCmdline,
		StopTimeoutSec: int(b.sp.StopTimeout / time.Second),
		March:          b.march,
	}
	if b.sp.Root == spec.RootErofs {
		img.Disk = RootFile
	} else {
		img.Initramfs = InitramfsFile
	}
	if len(b.sp.Setup) > 0 {
		img.StateDir = state
	}
	for _, p := range b.sp.Ports {
		img.Ports = append(img.Ports, vm.Port{Guest: p.Port, Proto: p.Proto})
	}
	var err error
	if img.Seccomp, err = SeccompPolicy(b.sp, m); err != nil {
		return err
	}
	b.report.Seccomp = img.Seccomp
	if err := img.Write(b.stage); err != nil {
		return err
	}
	if b.sp.Kernel.Opt == spec.OptPGO {
		if err := b.do("pgo", func() (string, error) { return b.pgoKernel(ctx, img) }); err != nil {
			return err
		}
	}
	if !b.opts.NoBoot {
		if err := b.do("boot", func() (string, error) { return b.bootRepaired(ctx, img, m, state) }); err != nil {
			return err
		}
	}
	b.report.TotalBytes = b.report.KernelBytes + b.report.InitramfsBytes
	return writeJSON(filepath.Join(b.stage, ReportFile), &b.report)
}

// maxProfileRepairs bounds the smoke boots of a profile-shaken image
// that restore the functions the guest trapped in.
const maxProfileRepairs = 20

// bootRepaired is the smoke boot. A profile removes what the traced run
// did not run, and the guest may run more: its CPU picks other
// implementations (AES without AES-NI under TCG), its limits differ
// (redis raises its open files), its kernel answers otherwise. Each
// function the guest traps in goes back into the root, and the image
// boots again.
func (b *builder) bootRepaired(ctx context.Context, img *vm.Image, m *manifest.Manifest, state string) (string, error) {
	unnamed := 0
	for round := 1; ; round++ {
		detail, err := b.boot(ctx, img)
		profile := b.sp.ShakeLibs == spec.ShakeProfile && round < maxProfileRepairs
		// A trap the kernel did not name (seen once in 12 boots: the
		// program killed by SIGTRAP, no fault report in the log) gets
		// the same image booted again.
		if profile && len(b.hit) == 0 && b.report.Boot != nil && b.report.Boot.ExitCode == 128+int(unix.SIGTRAP) && unnamed < 2 {
			unnamed++
			fmt.Fprintf(b.opts.Progress, "      boot %d: the program died of SIGTRAP, and the kernel did not say where: booting again\n", round)
			continue
		}
		// The program may also trap after the workload, when asked to
		// stop (a thread's exit path).
		if err == nil && (!profile || len(b.hit) == 0) {
			if n := len(b.restored); n > 0 {
				detail += fmt.Sprintf("; %d functions the profile removed restored after %d boots (report.json shake.restored)", n, round)
			}
			return detail, nil
		}
		if !profile || len(b.hit) == 0 {
			return "", err
		}
		var names []string
		around := 0
		for _, r := range b.hit {
			// Several processes (nginx's workers) may trap in the same one.
			if k := r.Entry(); !slices.Contains(b.restored, k) {
				names = append(names, r.String())
				b.restored = append(b.restored, k)
				for _, k := range b.neighbours(r) {
					if !slices.Contains(b.restored, k) {
						b.restored = append(b.restored, k)
						around++
					}
				}
			}
		}
		b.hit = nil
		if len(names) == 0 {
			return "", err // restored already: restoring again would not help
		}
		also := ""
		if around > 0 {
			also = fmt.Sprintf(" and %d removed functions around it (what its callers and it call)", around)
		}
		fmt.Fprintf(b.opts.Progress, "      boot %d: the guest ran %s, which the profile removed: restoring it%s and booting again\n", round, strings.Join(names, ", "), also)
		fmt.Fprintf(b.log, "==> initramfs (restoring %s)\n", strings.Join(names, ", "))
		if _, err := b.initramfs(ctx, m, state); err != nil {
			return "", err
		}
	}
}

// neighbours are the removed functions to restore beside r, FILE:FUNCTION
// (Neighbours); none when they cannot be read (the build log says why).
func (b *builder) neighbours(r libshake.Removal) []string {
	ns, err := Neighbours(b.stage, r.Entry())
	if err != nil {
		fmt.Fprintf(b.log, "restoring %s: %v\n", r, err)
	}
	return ns
}

// do runs one stage with a progress line before and after.
func (b *builder) do(name string, f func() (string, error)) error {
	b.stageNo++
	fmt.Fprintf(b.opts.Progress, "[%d/%d] %s ...\n", b.stageNo, b.stages, name)
	fmt.Fprintf(b.log, "==> %s\n", name)
	start := time.Now()
	detail, err := f()
	d := time.Since(start)
	b.report.Stages = append(b.report.Stages, Stage{Name: name, Seconds: d.Seconds(), Detail: detail})
	if err != nil {
		fmt.Fprintf(b.log, "%s failed after %s: %v\n", name, d.Round(time.Millisecond), err)
		return fmt.Errorf("%s: %w", name, err)
	}
	if detail != "" {
		detail = ": " + detail
	}
	fmt.Fprintf(b.opts.Progress, "      %s done in %s%s\n", name, d.Round(100*time.Millisecond), detail)
	return nil
}

// setup runs the spec's setup commands on the host, in a fresh state
// directory owned by the program's user.
func (b *builder) setup(ctx context.Context, state string) (string, error) {
	acct, err := b.sp.Account("/etc")
	if err != nil {
		return "", err
	}
	if err := os.RemoveAll(state); err != nil {
		return "", fmt.Errorf("clearing the state directory: %w", err)
	}
	if err := os.MkdirAll(state, 0o755); err != nil {
		return "", fmt.Errorf("creating the state directory: %w", err)
	}
	if err := os.Chown(state, acct.UID, acct.GID); err != nil {
		return "", fmt.Errorf("creating the state directory: %w", err)
	}
	vars := b.sp.Vars("", b.sp.GuestPorts(), state)
	for _, c := range b.sp.Setup {
		cmdline, err := vars.Expand(c)
		if err != nil {
			return "", fmt.Errorf("setup %q: %w", c, err)
		}
		fmt.Fprintf(b.log, "$ %s\n", cmdline)
		cmd := exec.CommandContext(ctx, "sh", "-c", cmdline)
		cmd.Dir = b.sp.Dir
		cmd.Env = append(os.Environ(), "HOME="+acct.Home)
		for _, k := range slices.Sorted(maps.Keys(b.sp.Env)) {
			cmd.Env = append(cmd.Env, k+"="+b.sp.Env[k])
		}
		if acct.UID != 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(acct.UID), Gid: uint32(acct.GID)}}
		}
		cmd.Stdout, cmd.Stderr = b.log, b.log
		child.InGroup(cmd) // a cancelled build stops what the command started too
		if err := child.Run(cmd); err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", fmt.Errorf("setup command %q: %w", cmdline, err)
		}
	}
	return fmt.Sprintf("%d commands, state in %s", len(b.sp.Setup), state), nil
}

// traceState traces the program; with setup, against a copy of the state
// directory, which is put back afterwards: the image gets the state as
// setup made it, not as the host's workload left it (pgbench's tables,
// say).
func (b *builder) traceState(ctx context.Context, state string) (*manifest.Manifest, error) {
	if len(b.sp.Setup) == 0 {
		return b.trace(ctx, state)
	}
	saved := state + ".setup"
	os.RemoveAll(saved)
	if out, err := exec.CommandContext(ctx, "cp", "-a", state, saved).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("keeping the state directory as setup made it: %v: %s", err, out)
	}
	m, err := b.trace(ctx, state)
	// The image gets the state as setup made it, never as the traced run
	// left it: a failure to restore it fails the build.
	rerr := os.RemoveAll(state)
	if rerr == nil {
		rerr = os.Rename(saved, state)
	}
	if err == nil && rerr != nil {
		err = fmt.Errorf("restoring the state directory %s as setup made it (the traced run changed it): %w", state, rerr)
	}
	return m, err
}

// trace runs the program on the host under the tracer with the workload.
func (b *builder) trace(ctx context.Context, state string) (*manifest.Manifest, error) {
	ports, err := b.sp.TracePorts()
	if err != nil {
		return nil, err
	}
	argv, env, err := b.sp.Command(ports, state)
	if err != nil {
		return nil, err
	}
	opts := trace.Options{
		Program:    argv[0],
		Args:       argv[1:],
		Env:        os.Environ(),
		Stdout:     b.log,
		Stderr:     b.log,
		Log:        b.log,
		Timeout:    b.sp.ReadyTimeout,
		Grace:      b.sp.StopTimeout,
		StopSignal: unix.SignalNum(b.sp.StopSignal),
	}
	if b.sp.ShakeLibs == spec.ShakeProfile {
		opts.Coverage = libshake.EntryOffsets
	}
	// Trace the program as the user it runs as in the guest: what it
	// creates in the state directory then has the owner it will need there,
	// and programs that refuse root (postgres) start.
	acct, err := b.sp.Account("/etc")
	if err != nil {
		return nil, err
	}
	if acct.UID != 0 {
		opts.Credential = &syscall.Credential{Uid: uint32(acct.UID), Gid: uint32(acct.GID)}
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		opts.Env = append(opts.Env, k+"="+env[k])
	}
	if opts.Ready, err = traceReady(b.sp, ports); err != nil {
		return nil, err
	}
	if b.sp.Workload != "" {
		if opts.Workload, err = b.sp.Expand(b.sp.Workload, "127.0.0.1", ports); err != nil {
			return nil, fmt.Errorf("workload: %w", err)
		}
		opts.WorkloadTimeout = b.sp.WorkloadTimeout
	}
	m, err := trace.Run(ctx, opts)
	if err != nil {
		return nil, err
	}
	if w := m.Workload; w != nil && w.ExitCode != 0 {
		return nil, fmt.Errorf("the workload failed on the host (exit %d) while tracing, so the trace does not show a working program:\n%s",
			w.ExitCode, tail(w.Output, 10))
	}
	return m, nil
}

// traceReady is the spec's ready condition for a trace whose guest ports
// listen on ports[guest]. Without one, as in the guest, the program is
// ready when any of its TCP ports accepts.
func traceReady(sp *spec.Spec, ports map[int]int) (trace.Ready, error) {
	if r := sp.Ready.OnHost(ports).String(); r != "" {
		return trace.ParseReady(r)
	}
	var tcp []int
	for _, p := range sp.Ports {
		if p.Proto == "tcp" && !slices.Contains(tcp, ports[p.Port]) {
			tcp = append(tcp, ports[p.Port])
		}
	}
	if len(tcp) == 0 {
		return trace.Ready{}, nil
	}
	return trace.AnyTCP(tcp...), nil
}

// kernel configures and builds the kernel for m.
func (b *builder) kernel(ctx context.Context, m *manifest.Manifest) (string, error) {
	if b.report.Gaps = gaps(m); len(b.report.Gaps) > 0 {
		shown := b.report.Gaps[:min(3, len(b.report.Gaps))]
		more := ""
		if n := len(b.report.Gaps) - len(shown); n > 0 {
			more = fmt.Sprintf(" and %d more", n)
		}
		fmt.Fprintf(b.opts.Progress, "      %d facts of the trace no kernel option provides (report.json gaps): %s%s\n",
			len(b.report.Gaps), strings.Join(shown, "; "), more)
	}
	if b.opts.KernelFrom != "" {
		return b.reuseKernel(m)
	}
	tree, err := ksrc.Prepare(ctx, b.sp.Kernel.Source, b.cache, b.opts.Progress)
	if err != nil {
		return "", err
	}
	rootSyms, err := rootKconfig(b.sp)
	if err != nil {
		return "", err
	}
	if b.tools, err = toolsFor(ctx, b.sp, b.cache); err != nil {
		return "", err
	}
	enable := append(append(rootSyms, b.tools.Enable...), b.sp.Kernel.Enable...)
	res, err := kconfig.Generate(ctx, kconfig.Options{
		Tree:     tree,
		Target:   b.sp.Target,
		Opt:      kernelOpt(b.sp.Kernel.Opt),
		Manifest: m,
		Net:      len(b.sp.Ports) > 0,
		Root:     b.sp.Root,
		Enable:   enable,
		Disable:  b.sp.Kernel.Disable,
		CacheDir: b.cache,
		Log:      b.log,
		MakeVars: b.tools.Kconfig,
	})
	if err != nil {
		return "", err
	}
	if b.removeSyscalls, err = b.shakeSyscalls(tree, m); err != nil {
		return "", err
	}
	kr, err := installKernel(ctx, b.kbuildOptions(tree, res.Data), b.stage, b.log)
	if err != nil {
		return "", err
	}
	meta := kr.Meta
	b.report.Kernel = &meta
	b.report.KernelBytes = meta.BzImageBytes
	b.report.KernelSymbols = res.Yes
	hit := "built"
	if kr.Hit {
		hit = "cache hit"
	}
	detail := fmt.Sprintf("%s, %d options =y, bzImage %s", hit, res.Yes, humanBytes(meta.BzImageBytes))
	if sh := b.report.Syscalls; sh != nil {
		detail += fmt.Sprintf("; %d of %d syscalls removed", len(sh.Removed), sh.Table)
	}
	if g := meta.GCSections; g != nil {
		detail += fmt.Sprintf("; dead code removed at the link: %d functions (%d syscall entry points), %d data objects, vmlinux code %s", g.Functions, len(g.Syscalls), g.Data, humanBytes(int64(meta.Vmlinux.Code)))
	}
	return detail, nil
}

// gaps are the facts of m that no kernel option provides, each with why
// (a syscall Linux 6.12 no longer has, an ioctl the feature table does not
// know): the kernel cannot be made to give them, and the build says so
// rather than drop them silently.
func gaps(m *manifest.Manifest) []string {
	var out []string
	for _, g := range features.Gaps(m) {
		out = append(out, g.Fact+": "+g.Reason)
	}
	return out
}

// kbuildOptions are the options of every kernel build of the image (the
// PGO builds add to them).
func (b *builder) kbuildOptions(tree *ksrc.Tree, config []byte) kbuild.Options {
	o := kbuild.Options{
		Tree:             tree,
		Config:           config,
		CacheDir:         b.cache,
		Jobs:             b.opts.Jobs,
		RemoveSyscalls:   b.removeSyscalls,
		Progress:         b.opts.Progress,
		ProgressTerminal: b.opts.Terminal,
	}
	b.tools.apply(&o)
	return o
}

// MakeVars are the make arguments a spec asks for: KCFLAGS=-march=X.
func MakeVars(sp *spec.Spec) []string {
	if sp.Kernel.March == "" {
		return nil
	}
	return []string{"KCFLAGS=-march=" + sp.Kernel.March}
}

// kernelOpt is the kconfig optimisation for a spec's: a profile-guided
// kernel starts as -O2.
func kernelOpt(opt string) string {
	if opt == spec.OptPGO {
		return kconfig.OptO2
	}
	return opt
}

// installKernel builds the kernel opts describes (through the cache) and
// puts its artifacts at the top of the image directory dir; the kernel
// build's log goes to log.
func installKernel(ctx context.Context, opts kbuild.Options, dir string, log io.Writer) (*kbuild.Result, error) {
	out := filepath.Join(dir, "kernel")
	opts.OutDir = out
	kr, err := kbuild.Build(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	for src, dst := range map[string]string{
		"bzImage": KernelFile, "vmlinux": VmlinuxFile, ".config": ConfigFile,
		"System.map": SystemMapFile, "build.json": KernelMeta,
	} {
		if err := os.Rename(filepath.Join(out, src), filepath.Join(dir, dst)); err != nil {
			return nil, fmt.Errorf("collecting kernel artifacts: %w", err)
		}
	}
	if data, err := os.ReadFile(filepath.Join(out, "build.log")); err == nil {
		fmt.Fprintf(log, "--- kernel build log (%s) ---\n%s--- end of kernel build log ---\n", kr.BuildDir, data)
	}
	return kr, nil
}

// execPath returns the absolute path program was exec'ed at: looked up in
// $PATH as the tracer did, symlinks kept. Without a trace of this host
// (a manifest from elsewhere), it falls back to the manifest's path.
func execPath(program string, m *manifest.Manifest) (string, error) {
	if filepath.IsAbs(program) {
		return filepath.Clean(program), nil
	}
	if !strings.Contains(program, "/") {
		if p, err := exec.LookPath(program); err == nil {
			if p, err = filepath.Abs(p); err == nil {
				return p, nil
			}
		}
	}
	if m.Program.Resolved == "" {
		return "", fmt.Errorf("cannot tell where %s is: the manifest has no resolved program path", program)
	}
	return m.Program.Resolved, nil
}

// reuseKernel copies the kernel of another image after checking that its
// config has every option m requires.
func (b *builder) reuseKernel(m *manifest.Manifest) (string, error) {
	from := b.opts.KernelFrom
	cfg, img, err := kernelFromImage(from, b.sp.Target, "kernel-from")
	if err != nil {
		return "", err
	}
	if img != nil {
		b.march = img.March
	}
	missing, shake, err := kernelLacks(b.sp, m, from, cfg)
	if err != nil {
		return "", err
	}
	b.report.Syscalls = shake
	if len(missing) > 0 {
		hint := ""
		if slices.Contains(missing, "CONFIG_SECCOMP_FILTER") {
			hint = ", or build without the guest's seccomp filter (--seccomp off)"
		}
		return "", fmt.Errorf("the kernel of %s lacks %s, which this program needs: build its own kernel (without --kernel-from)%s",
			from, strings.Join(missing, ", "), hint)
	}
	for _, name := range []string{KernelFile, VmlinuxFile, ConfigFile, SystemMapFile, KernelMeta} {
		if err := atomicdir.CopyFile(filepath.Join(from, name), filepath.Join(b.stage, name)); err != nil {
			return "", fmt.Errorf("reusing the kernel of %s: %w", from, err)
		}
	}
	var meta kbuild.Meta
	if data, err := os.ReadFile(filepath.Join(b.stage, KernelMeta)); err == nil {
		json.Unmarshal(data, &meta)
	}
	b.report.Kernel = &meta
	b.report.KernelBytes = meta.BzImageBytes
	b.report.KernelSymbols = cfg.Count("y")
	return fmt.Sprintf("reused from %s, %d options =y", from, b.report.KernelSymbols), nil
}

// kernelLacks returns what the kernel of the image in from, configured as
// cfg, lacks of what a program of spec sp and manifest m needs, sorted:
// options as CONFIG_X, and as "syscall X" each syscall the program made or
// the spec keeps that the kernel's shaken syscall table removed; and that
// kernel's syscall shaking (nil: its table is whole).
func kernelLacks(sp *spec.Spec, m *manifest.Manifest, from string, cfg *kconfig.Config) ([]string, *SyscallShake, error) {
	need, err := rootKconfig(sp)
	if err != nil {
		return nil, nil, err
	}
	need = append(need, sp.Kernel.Enable...)
	for _, r := range features.Required(m) {
		need = append(need, r.Symbol)
	}
	var missing []string
	for _, sym := range need {
		if !cfg.Enabled(sym) {
			missing = append(missing, "CONFIG_"+sym)
		}
	}
	var shake *SyscallShake
	if rep, err := ReadReport(from); err == nil && rep.Syscalls != nil {
		shake = rep.Syscalls
		for _, s := range m.Syscalls {
			if slices.Contains(shake.Removed, s.Name) {
				missing = append(missing, "syscall "+s.Name)
			}
		}
		for _, s := range sp.Kernel.KeepSyscalls {
			if slices.Contains(shake.Removed, s) {
				missing = append(missing, "syscall "+s)
			}
		}
	}
	slices.Sort(missing)
	return slices.Compact(missing), shake, nil
}

// CheckKernelOf says whether the image in dir can run on the kernel of the
// image in from (bespoke bench --kernel-of): the same target and -march,
// and every option and syscall the image's program needs, as --kernel-from
// checks at build time (with the image's fixes).
func CheckKernelOf(dir, from string) error {
	sp, err := ReadSpec(dir)
	if err != nil {
		return err
	}
	m, err := manifest.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return fmt.Errorf("reading the image's trace: %w", err)
	}
	fixes, err := ReadFixes(dir)
	if err != nil {
		return err
	}
	own, err := vm.LoadImage(dir)
	if err != nil {
		return err
	}
	cfg, img, err := kernelFromImage(from, own.Target, "kernel-of")
	if err != nil {
		return err
	}
	if img != nil && img.March != own.March {
		return fmt.Errorf("the kernel of %s is compiled for %s and the image in %s for %s: QEMU's CPU follows the image's, so compare kernels of one -march",
			from, marchName(img.March), dir, marchName(own.March))
	}
	missing, _, err := kernelLacks(fixes.Apply(sp), m, from, cfg)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		hint := "compare kernels whose options cover it (each built with the other's options in kernel.enable, say)"
		if strings.HasPrefix(missing[len(missing)-1], "syscall ") {
			// Sorted: CONFIG_ before syscall.
			hint = "compare kernels whose syscall tables keep what it needs (built without kernel.shake_syscalls, or with those syscalls in keep_syscalls)"
			if strings.HasPrefix(missing[0], "CONFIG_") {
				hint = "compare kernels whose options and syscall tables cover it"
			}
		}
		return fmt.Errorf("the kernel of %s lacks %s, which the image in %s needs: %s", from, strings.Join(missing, ", "), dir, hint)
	}
	return nil
}

// marchName names a kernel.march for a message ("" is the default).
func marchName(m string) string {
	if m == "" {
		return "the default -march"
	}
	return "-march " + m
}

// kernelFromImage reads what --kernel-from (or bench's --kernel-of, flag)
// needs of the image in from: its kernel's config, and its image.json (nil
// when it has none) whose target must be target.
func kernelFromImage(from, target, flag string) (*kconfig.Config, *vm.Image, error) {
	verb, hint := "reusing", fmt.Sprintf("build its own kernel (without --kernel-from), or reuse a %s image's", target)
	if flag != "kernel-from" {
		verb, hint = "reading", "compare kernels of one target"
	}
	f, err := os.Open(filepath.Join(from, ConfigFile))
	if err != nil {
		return nil, nil, fmt.Errorf("%s the kernel of %s: %w (--%s takes an image directory)", verb, from, err, flag)
	}
	cfg, err := kconfig.ParseConfig(f)
	f.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("%s the kernel of %s: %w", verb, from, err)
	}
	if _, err := os.Stat(filepath.Join(from, KernelFile)); err != nil {
		return nil, nil, fmt.Errorf("%s the kernel of %s: %w", verb, from, err)
	}
	data, err := os.ReadFile(filepath.Join(from, vm.ImageFile))
	if err != nil {
		return cfg, nil, nil
	}
	var img vm.Image
	if json.Unmarshal(data, &img) != nil {
		return cfg, nil, nil
	}
	if img.Target != "" && img.Target != target {
		return nil, nil, fmt.Errorf("the kernel of %s is configured for %s, and this image targets %s: %s",
			from, img.Target, target, hint)
	}
	return cfg, &img, nil
}

// checkOut refuses an output that a build would destroy: a file, or a
// directory with content that is not an image.
func checkOut(out string) error {
	fi, err := os.Stat(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("building image: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("building image: %s is a file, not an image directory: choose another -o", out)
	}
	if _, err := os.Stat(filepath.Join(out, vm.ImageFile)); err == nil {
		return nil
	}
	if ents, err := os.ReadDir(out); err != nil || len(ents) > 0 {
		return fmt.Errorf("building image: %s is not empty and holds no image (no %s): choose another -o, or empty it", out, vm.ImageFile)
	}
	return nil
}

// initramfs packs the program, its files and the guest init.
func (b *builder) initramfs(ctx context.Context, m *manifest.Manifest, state string) (string, error) {
	init, err := initramfs.InitBinary(ctx, b.cache)
	if err != nil {
		return "", err
	}
	acct, err := b.sp.Account("/etc")
	if err != nil {
		return "", err
	}
	argv, env, err := b.sp.Command(b.sp.GuestPorts(), state)
	if err != nil {
		return "", err
	}
	// Start the program at the path it was exec'ed at on the host, with
	// symlinks kept: programs such as redis-server (a link to
	// redis-check-rdb) choose what to be from argv[0].
	path, err := execPath(argv[0], m)
	if err != nil {
		return "", err
	}
	cfg := protocol.Config{
		Name:           b.sp.Name,
		Path:           path,
		Args:           argv[1:],
		Uid:            acct.UID,
		Gid:            acct.GID,
		Workdir:        b.sp.Workdir,
		Hostname:       b.sp.Name,
		Rlimits:        b.sp.Rlimits,
		StopTimeoutSec: int(b.sp.StopTimeout / time.Second),
		StopSignal:     b.sp.StopSignal,
	}
	if len(b.sp.Setup) > 0 {
		cfg.State = state // as img.StateDir
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		cfg.Env = append(cfg.Env, k+"="+env[k])
	}
	for _, d := range b.sp.Dirs {
		uid, gid, err := spec.LookupOwner(d.Owner, "/etc", acct)
		if err != nil {
			return "", err
		}
		cfg.Dirs = append(cfg.Dirs, protocol.Dir{Path: d.Path, Mode: uint32(d.Mode.Perm()), Uid: uid, Gid: gid})
	}
	include := slices.Clone(b.sp.Include)
	if len(b.sp.Setup) > 0 {
		include = append(include, state)
	}
	var trees, leave []string
	if b.sp.Data != spec.DataTraced {
		pulled, err := datatrees.Select(m, "")
		if err != nil {
			return "", err
		}
		for _, t := range pulled {
			trees = append(trees, t.Paths...)
			leave = append(leave, t.Left...)
			left := ""
			if len(t.Left) > 0 {
				left = "; left out: " + strings.Join(t.Left, " ")
			}
			fmt.Fprintf(b.log, "data tree %s: %s, %d files, %s (%s%s)\n", t.Name, strings.Join(t.Paths, " "), t.Files, humanBytes(t.Bytes), t.Why, left)
		}
		b.report.DataTrees = pulled
	}
	shaken, err := os.MkdirTemp(b.stage, ".shaken-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(shaken)
	rep, err := initramfs.Build(ctx, initramfs.Options{
		Rewrite:     b.shakeRoot(shaken, append(whats(b.opts.Fixes.ShakeKeep), b.restored...), m.FunctionsRun),
		Manifest:    withoutState(m, state, len(b.sp.Setup) > 0),
		Init:        init,
		Config:      cfg,
		User:        initramfs.User{Name: acct.Name, Uid: acct.UID, Gid: acct.GID, Group: acct.Group, Home: acct.Home},
		Include:     include,
		Trees:       trees,
		TreeLeave:   leave,
		Exclude:     b.sp.Exclude,
		Format:      b.sp.Root,
		Compression: b.sp.Compression,
		Output:      filepath.Join(b.stage, RootFileOf(b.sp.Root)),
	})
	if err != nil {
		return "", err
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(b.log, "%s: %s\n", b.sp.Root, w)
	}
	b.report.Initramfs = rep
	b.report.InitramfsBytes = rep.CompressedBytes
	held := map[string]bool{}
	for _, f := range rep.Files {
		held[f.Path] = true
	}
	pkgs, err := datatrees.PackageFiles(m, func(p string) bool { return held[p] }, "")
	if err != nil {
		fmt.Fprintf(b.log, "reading dpkg's file lists: %v (report.json has no not_in_image)\n", err)
	}
	for _, p := range pkgs {
		if len(p.Missing) > 0 {
			fmt.Fprintf(b.log, "package %s: %d of its %d files under /etc and /usr/share are not in the image (%s; report.json not_in_image)\n", p.Name, len(p.Missing), p.Shipped, humanBytes(p.MissingBytes))
		}
	}
	b.report.NotInImage = pkgs
	detail := fmt.Sprintf("%s: %d entries, %s of files, %s compressed", b.sp.Root, len(rep.Files), humanBytes(rep.FileBytes), humanBytes(rep.CompressedBytes))
	if sh := b.report.Shake; sh != nil {
		detail += fmt.Sprintf("; shaken (%s): %s of %s of code removed", sh.Mode, humanBytes(sh.RemovedBytes), humanBytes(sh.TextBytes))
	}
	if n := len(b.report.DataTrees); n > 0 {
		var ns []string
		for _, t := range b.report.DataTrees {
			ns = append(ns, t.Name)
		}
		detail += "; data trees: " + strings.Join(ns, ", ")
	}
	return detail, nil
}

// GuestCmdline are the kernel parameters every image's kernel gets (its
// image.json cmdline), applied before /init starts (PROC_SYSCTL, in every
// base):
//
//   - memory is not overcommitted by guess, so that a mapping larger than
//     the guest's RAM, which costs nothing until used (the 32 MiB arena
//     index the Go runtime of the guest init maps at start), does not fail
//     (the kernel's default check refuses it: "__vm_enough_memory: pid: 1,
//     comm: init, bytes: 33554432"), and the program gets the memory it
//     touches until the OOM killer says otherwise, as Redis, for one, asks
//     of its host;
//   - no watermark boost: after a fragmentation event the kernel would
//     keep 2 MiB more free than its minimum (seen in an OOM report of the
//     redis image at 22 MiB: "boost:2048kB"), a tenth of a small guest.
//     Measured on the redis image: its least memory 25 MiB with the boost,
//     24 MiB without.
const GuestCmdline = "sysctl.vm.overcommit_memory=1 sysctl.vm.watermark_boost_factor=0"

// RootFileOf is the file name of an image's root of format root
// (spec.RootErofs or spec.RootInitramfs).
func RootFileOf(root string) string {
	if root == spec.RootErofs {
		return RootFile
	}
	return InitramfsFile
}

// rootKconfig returns the kernel options the image needs whatever its
// program's trace says: those of the spec's root; with a disk root and a
// state directory, the state volume's filesystem (bespoke run -v
// FILE:{state}); with a seccomp filter, seccomp's (SeccompKconfig).
func rootKconfig(sp *spec.Spec) ([]string, error) {
	syms, err := initramfs.RootKconfig(sp.Root, sp.Compression)
	if err == nil && sp.Root == spec.RootErofs && len(sp.Setup) > 0 {
		syms = append(syms, strings.ToUpper(vm.VolumeFS)+"_FS")
	}
	if sp.SeccompDefault() != spec.SeccompOff {
		syms = append(syms, SeccompKconfig...)
	}
	return syms, err
}

// withoutState returns m without the files it used in the state
// directory, when the image gets that directory whole (as setup made it:
// files the workload created there on the host are gone).
func withoutState(m *manifest.Manifest, state string, whole bool) *manifest.Manifest {
	if !whole {
		return m
	}
	mm := *m
	mm.Files = slices.DeleteFunc(slices.Clone(m.Files), func(f manifest.File) bool {
		return f.Path == state || strings.HasPrefix(f.Path, state+"/")
	})
	return &mm
}

// boot boots the new image once and, when the spec has one, runs the
// workload against it through the forwarded port.
func (b *builder) boot(ctx context.Context, img *vm.Image) (string, error) {
	console, err := os.Create(filepath.Join(b.stage, "console.log"))
	if err != nil {
		return "", err
	}
	defer console.Close()
	var wl *Workload
	cfg := vm.Config{
		ImageDir: b.stage,
		Image:    img,
		Accel:    b.opts.Accel,
		Timeout:  b.sp.ReadyTimeout + b.sp.WorkloadTimeout + 2*time.Minute,
		Console:  console,
		Status:   b.log,
		LogPath:  filepath.Join(b.stage, "console.log"),
		// After the workload, the program gets its stop signal: the
		// report says whether it shut down cleanly.
		StopGuest: true,
	}
	// A server does not exit by itself: the smoke boot ends once it is
	// ready (and has served the workload, when there is one).
	if b.sp.Workload != "" || b.sp.Ready.Kind != spec.ReadyNone {
		cfg.OnReady = func(ctx context.Context, ports map[int]int) error {
			if b.sp.Workload == "" {
				return nil
			}
			w, err := b.sp.Expand(b.sp.Workload, "127.0.0.1", ports)
			if err != nil {
				return err
			}
			fmt.Fprintf(b.opts.Progress, "      running the workload against the image: %s\n", w)
			wl, err = RunWorkload(ctx, w, b.sp.WorkloadTimeout, b.log)
			return err
		}
	}
	res, err := vm.Run(ctx, cfg)
	if res != nil {
		b.hit = res.Removed
		b.report.Boot = &Boot{
			Accel:       res.Accel,
			InitHost:    res.Boot.Init.Seconds(),
			InitGuest:   res.Boot.GuestInit.Seconds(),
			ReadyHost:   res.Boot.Ready.Seconds(),
			ReadyBy:     res.Boot.ReadyBy,
			ExitCode:    res.ExitCode,
			TotalHost:   res.Boot.Total.Seconds(),
			ConsoleLog:  filepath.Join(b.opts.Out, "console.log"),
			ProgramExit: !res.Stopped,
		}
		if res.StopRequested {
			code := res.ExitCode
			b.report.Boot.StopExitCode = &code
		}
		b.report.Boot.Seccomp = res.Seccomp
		b.report.Boot.State, b.report.Boot.StateFull = res.State, res.StateFull
		for _, e := range res.Seccomp {
			fmt.Fprintf(b.opts.Progress, "      warning: seccomp: %s (bespoke verify --fix adds it to the allowlist)\n", e)
		}
	}
	b.report.Workload = wl
	if err != nil {
		return "", err
	}
	if (b.sp.Workload != "" || b.sp.Ready.Kind != spec.ReadyNone) && !res.Stopped {
		con, _ := os.ReadFile(cfg.LogPath)
		return "", fmt.Errorf("the program exited with status %d in the guest before it was ready; last console lines (%s):\n%s",
			res.ExitCode, b.failedLog("console.log"), tail(string(con), 20))
	}
	if wl != nil && wl.ExitCode != 0 {
		full := ""
		if res.StateFull != nil {
			full = "; " + vm.StateLine(*res.StateFull, true)
		}
		return "", fmt.Errorf("the workload failed against the image (exit %d%s):\n%s", wl.ExitCode, full, wl.Output)
	}
	detail := "booted: " + res.Boot.String()
	if wl != nil {
		detail += fmt.Sprintf("; workload passed in %.1fs", wl.Seconds)
	}
	switch {
	case res.StopRequested && res.ExitCode == 0:
		detail += "; stopped cleanly (exit 0)"
	case res.StopRequested:
		detail += fmt.Sprintf("; after its stop signal the program exited with status %d", res.ExitCode)
		fmt.Fprintf(b.opts.Progress, "      warning: %s did not shut down cleanly: status %d after %s (console: %s)\n",
			b.sp.Name, res.ExitCode, b.sp.StopSignal, filepath.Join(b.opts.Out, "console.log"))
	case !res.Stopped:
		detail += fmt.Sprintf("; the program exited with status %d", res.ExitCode)
	}
	return detail, nil
}

// RunWorkload runs a workload command on the host and keeps its output
// (the last lines in Output, all of it in log). A workload that fails has
// a non-zero ExitCode, one killed because ctx ended -1; the error is for
// one that could not run or did not finish within timeout. It runs as
// child.Shell runs it: in a process group of its own, killed with all it
// started when ctx ends or the timeout passes (and its shell killed with
// bespoke, even by SIGKILL).
func RunWorkload(ctx context.Context, command string, timeout time.Duration, log io.Writer) (*Workload, error) {
	start := time.Now()
	var out bytes.Buffer
	code, err := child.Shell(ctx, command, timeout, &out)
	fmt.Fprintf(log, "$ %s\n%s", command, out.Bytes())
	w := &Workload{Command: command, Seconds: time.Since(start).Seconds(), Output: tail(out.String(), 20), Full: out.String(), ExitCode: code}
	var te *child.TimeoutError
	switch {
	case errors.As(err, &te):
		return w, fmt.Errorf("the workload %w", err)
	case ctx.Err() != nil:
		// Killed: the caller knows why (the guest ended, an interrupt).
	case err != nil:
		return w, fmt.Errorf("running the workload: %w", err)
	}
	return w, nil
}

func (b *builder) summary(logPath string) {
	r := &b.report
	p := b.opts.Progress
	fmt.Fprintf(p, "image %s in %s\n", r.Name, b.opts.Out)
	fmt.Fprintf(p, "  kernel     %s (%d options =y)\n", humanBytes(r.KernelBytes), r.KernelSymbols)
	initBytes := ""
	for _, f := range r.Initramfs.Files {
		if f.Kind == initramfs.KindInit {
			initBytes = "; the guest init " + humanBytes(f.Bytes) + " before compression"
		}
	}
	fmt.Fprintf(p, "  %-10s %s (%d entries%s)\n", b.sp.Root, humanBytes(r.InitramfsBytes), len(r.Initramfs.Files), initBytes)
	fmt.Fprintf(p, "  total      %s\n", humanBytes(r.TotalBytes))
	if r.Boot != nil {
		ready := ""
		if r.Boot.ReadyHost > 0 {
			ready = fmt.Sprintf(", ready at %.2fs", r.Boot.ReadyHost)
		}
		fmt.Fprintf(p, "  boot       /init at %.2fs (guest %.2fs)%s under %s\n", r.Boot.InitHost, r.Boot.InitGuest, ready, r.Boot.Accel)
	}
	fmt.Fprintf(p, "  log        %s\n", logPath)
	fmt.Fprintf(p, "run it: bespoke run %s\n", b.opts.Out)
}

// writeJSON writes v as indented JSON to path, atomically (a temporary
// file renamed into place: a crash leaves the old file or the new one).
func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
