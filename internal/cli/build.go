package cli

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/spec"
)

// runBuild runs the whole pipeline for one program: trace, kernel config,
// kernel build, initramfs and a smoke boot, into an image directory.
func runBuild(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "build")
	var (
		f            spec.Flags
		file, out    string
		manifestPath string
		noBoot       bool
		accel        string
		ports        stringList
		envs         stringList
		include      stringList
		exclude      stringList
		jobs         int
		kernelFrom   string
		optimize     string
		shake        bool
		dce          bool
		sizeReport   bool
		march        string
		keepSyscalls stringList
	)
	fs.StringVar(&file, "f", "", "the spec file (bespoke.yaml); without it, the program follows --")
	fs.StringVar(&out, "o", "", "the image directory to write (default: ./NAME.image)")
	fs.StringVar(&f.Name, "name", "", "the image name (default: the program's base name)")
	fs.StringVar(&f.Ready, "ready", "", "when the program is ready: tcp:PORT or log:REGEX")
	fs.StringVar(&f.Workload, "workload", "", "a shell command run against the ready program ({host} and {port} are filled in)")
	fs.Var(&ports, "port", "a guest port the program serves, e.g. 6379 or 53/udp (repeatable; with -f, added to the spec's)")
	fs.Var(&ports, "p", "short for --port")
	fs.Var(&envs, "e", "K=V added to the program's environment (repeatable; with -f, sets K over the spec's)")
	fs.StringVar(&f.User, "user", "", "the user the program runs as (default root)")
	fs.StringVar(&f.Workdir, "workdir", "", "the program's working directory in the guest")
	fs.Var(&include, "include", "a host path to copy into the image (repeatable; with -f, added to the spec's)")
	fs.Var(&exclude, "exclude", "a glob of guest paths never copied (repeatable; with -f, added to the spec's)")
	fs.StringVar(&f.Target, "target", "", "qemu-microvm (default), qemu-pc or firecracker")
	fs.StringVar(&f.Root, "root", "", "the root filesystem: erofs (default: a read-only disk read on demand) or initramfs (unpacked into RAM)")
	fs.StringVar(&f.Compression, "compression", "", "the root's compression: for erofs lz4hc (default: fastest to read) or lzma (a third smaller, slower to read; needs make deps' erofs-utils), for initramfs xz")
	fs.StringVar(&f.ShakeLibs, "shake-libs", "", "remove code from the image's programs and libraries: static (what nothing can reach), profile (what did not run under the traced workload), or off (default; docs/shake.md)")
	fs.StringVar(&f.Data, "data", "", "the data the image holds: trees (default: the traced files, and whole the data trees the program loads by name: time zones, locales, charsets, CA certificates; docs/spec.md) or traced (the traced files only)")
	fs.StringVar(&f.Memory, "m", "", "guest memory, e.g. 256M")
	fs.IntVar(&f.CPUs, "cpus", 0, "guest CPUs")
	fs.StringVar(&f.Seccomp, "seccomp", "", "the guest's seccomp filter on the program, from its trace: enforce (other syscalls fail with ENOSYS), log (they run and are reported) or off; default: the spec's, else log for a program with ports, off without")
	fs.StringVar(&manifestPath, "manifest", "", "use this manifest (from bespoke trace) instead of tracing again")
	fs.BoolVar(&noBoot, "no-boot", false, "skip the smoke boot")
	fs.StringVar(&accel, "accel", "auto", "accelerator for the smoke boot: auto, kvm or tcg")
	fs.StringVar(&kernelFrom, "kernel-from", "", "reuse the kernel of this image directory (its config must have every option the program needs)")
	fs.IntVar(&jobs, "j", 0, "parallel jobs for the kernel build (default: the number of CPUs)")
	fs.StringVar(&optimize, "optimize", "", "kernel optimisation: o2 (-O2), size (-Os) or pgo (profile-guided under the workload; see docs/pgo.md); default: the spec's kernel.opt, else o2")
	fs.StringVar(&march, "march", "", "compile the kernel for this CPU level (GCC -march: x86-64-v2, x86-64-v3, native); the image then needs such a CPU (docs/pgo.md)")
	fs.BoolVar(&sizeReport, "size-report", false, "with --optimize pgo: also build the same config -Os, with the profile but no cold-for-size, and with the whole syscall table, and report their sizes (up to three more kernel builds)")
	fs.BoolVar(&shake, "shake-syscalls", false, "remove the syscalls neither the program nor the guest init makes from the kernel's syscall table (they return ENOSYS; see docs/pgo.md)")
	fs.BoolVar(&dce, "kernel-dce", false, "remove from the kernel the code and data nothing refers to: compile it with Clang ThinLTO and link it with --gc-sections (needs clang, lld and llvm: make deps; not with --optimize pgo; docs/pgo.md)")
	fs.Var(&keepSyscalls, "keep-syscalls", "syscalls to keep in a shaken table, e.g. io_uring_setup,io_uring_enter (repeatable; implies --shake-syscalls)")
	pos, rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected argument %q: put the program after -- (bespoke build -- PROGRAM ARGS) or use -f bespoke.yaml", pos[0])
	}
	set := visited(fs)
	if err := checkBuildFlags(set, f); err != nil {
		return err
	}
	f.Ports, f.Env, f.Include, f.Exclude = ports, envs, include, exclude
	var (
		sp        *spec.Spec
		fromFlags []string
	)
	switch {
	case file != "" && len(rest) > 0:
		return usageErrorf("give either -f SPEC or a program after --, not both")
	case file != "":
		if sp, err = spec.Load(file); err != nil {
			return err
		}
		// A flag beside -f overrides the file's field (docs/spec.md).
		if fromFlags, err = f.Override(sp); err != nil {
			return usageErrorf("%v", err)
		}
	case len(rest) > 0:
		if sp, err = spec.FromArgs(f, rest); err != nil {
			return usageErrorf("%v", err)
		}
	default:
		return usageErrorf("nothing to build: give -f bespoke.yaml, or the program after -- (bespoke build --ready tcp:6379 -- redis-server)")
	}
	switch optimize {
	case "":
	case spec.OptO2, spec.OptSize, spec.OptPGO:
		sp.Kernel.Opt = optimize
	default:
		return usageErrorf("--optimize %q: want o2, size or pgo", optimize)
	}
	if march != "" {
		if !spec.ValidMarch(march) {
			return usageErrorf("--march %q: want a GCC -march value, e.g. x86-64-v3 or native", march)
		}
		sp.Kernel.March = march
	}
	if set["accel"] && noBoot && sp.Kernel.Opt != spec.OptPGO {
		return usageErrorf("--accel chooses the accelerator of the smoke boot, and --no-boot skips it: drop one of them")
	}
	if sizeReport && sp.Kernel.Opt != spec.OptPGO {
		return usageErrorf("--size-report reports the variants of a profile-guided kernel: add --optimize pgo (the spec's kernel.opt is %s)", sp.Kernel.Opt)
	}
	if dce {
		sp.Kernel.DCE = true
		if sp.Kernel.Opt == spec.OptPGO {
			return usageErrorf("--kernel-dce builds the kernel with Clang, and --optimize pgo (or the spec's kernel.opt: pgo) with GCC's profile: drop one of them")
		}
	}
	if shake || len(keepSyscalls) > 0 {
		sp.Kernel.ShakeSyscalls = true
		for _, k := range keepSyscalls {
			for _, name := range strings.Split(k, ",") {
				if name = strings.TrimSpace(name); name != "" && !slices.Contains(sp.Kernel.KeepSyscalls, name) {
					sp.Kernel.KeepSyscalls = append(sp.Kernel.KeepSyscalls, name)
				}
			}
		}
	}
	if out == "" {
		out = sp.Name + ".image"
	}
	opts := image.Options{
		Spec:       sp,
		Out:        out,
		NoBoot:     noBoot,
		Accel:      accel,
		Progress:   env.Stderr,
		Terminal:   isTerminal(env.Stderr),
		Jobs:       jobs,
		KernelFrom: kernelFrom,
		SizeReport: sizeReport,
		FromFlags:  fromFlags,
	}
	if manifestPath != "" {
		if opts.Manifest, err = manifest.ReadFile(manifestPath); err != nil {
			return err
		}
	}
	rep, err := image.Build(ctx, opts)
	if err != nil {
		return fmt.Errorf("building %s: %w", sp.Name, err)
	}
	fmt.Fprintln(env.Stdout, out)
	_ = rep
	pruneAfterBuild(env)
	return nil
}

// checkBuildFlags refuses flags that are out of range or given together
// in a way that would leave one of them without an effect: bespoke build
// never drops a flag silently.
func checkBuildFlags(set map[string]bool, f spec.Flags) error {
	if set["cpus"] && f.CPUs < 1 {
		return usageErrorf("--cpus %d: want 1 or more", f.CPUs)
	}
	if set["kernel-from"] {
		for _, name := range []string{"optimize", "march", "kernel-dce", "shake-syscalls", "keep-syscalls", "size-report", "j"} {
			if set[name] {
				return usageErrorf("--%s configures the kernel build, and --kernel-from reuses another image's kernel: drop one of them", name)
			}
		}
	}
	return nil
}

// visited returns the names of the flags given on the command line.
func visited(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}
