package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// runFlags are the flags of bespoke run.
type runFlags struct {
	ports     stringList
	memory    string
	cpus      int
	accel     string
	env       stringList
	timeout   time.Duration
	dryRun    bool
	kernelLog bool
	logPath   string
	qemu      string
	volumes   stringList
	volSize   string
	seccomp   string
}

func runRun(ctx context.Context, env *Env, args []string) error {
	var f runFlags
	fs := newFlagSet(env, "run")
	fs.Var(&f.ports, "p", "forward `HOST:GUEST` (127.0.0.1 only; GUEST alone picks a free host port; add /udp for UDP); repeatable")
	fs.StringVar(&f.memory, "m", "", "guest `memory`: 256M, 1G, or MiB (default: the image's, else 256M)")
	fs.IntVar(&f.cpus, "cpus", 0, "number of guest CPUs (default: the image's, else 1)")
	fs.StringVar(&f.accel, "accel", "auto", "accelerator: auto (KVM when /dev/kvm is usable, else TCG), kvm or tcg")
	fs.Var(&f.env, "e", "add `K=V` to the program's environment; repeatable")
	fs.DurationVar(&f.timeout, "timeout", 0, "stop the VM after `DUR` (e.g. 30s; default: no limit)")
	fs.BoolVar(&f.dryRun, "n", false, "print the QEMU command line and exit")
	fs.BoolVar(&f.kernelLog, "kernel-log", false, `show the kernel's boot messages (drops "quiet")`)
	fs.StringVar(&f.logPath, "log", "", "save the console to `FILE` (default: IMAGE_DIR/console.log)")
	fs.StringVar(&f.qemu, "qemu", "", "QEMU `binary` (default: qemu-system-x86_64 on $PATH)")
	fs.Var(&f.volumes, "v", "mount the ext4 volume `HOSTFILE:/GUEST/PATH` (GUEST {state}: the image's state directory); a missing file is created and filled from the image at boot; repeatable")
	fs.StringVar(&f.volSize, "volume-size", "1G", "the `size` of a volume -v creates")
	fs.StringVar(&f.seccomp, "seccomp", "", "what the guest does with a syscall outside the image's seccomp allowlist, for this run: `enforce` (ENOSYS), log (runs; reported) or off (default: the image's)")
	pos, rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("want one IMAGE_DIR, got %d arguments (put the program's arguments after --)", len(pos))
	}
	cfg := vm.Config{
		ImageDir:  pos[0],
		CPUs:      f.cpus,
		Accel:     f.accel,
		Env:       f.env,
		Args:      rest,
		KernelLog: f.kernelLog,
		Timeout:   f.timeout,
		LogPath:   f.logPath,
		QEMU:      f.qemu,
		Console:   env.Stdout,
		Status:    env.Stderr,
		Seccomp:   f.seccomp,
	}
	if err := checkSeccompFlag(f.seccomp); err != nil {
		return err
	}
	for _, p := range f.ports {
		pm, err := vm.ParsePort(p)
		if err != nil {
			return usageErrorf("-p: %v", err)
		}
		cfg.Ports = append(cfg.Ports, pm)
	}
	if f.memory != "" {
		if cfg.MemoryMB, err = vm.ParseMemory(f.memory); err != nil {
			return usageErrorf("-m: %v", err)
		}
		if img, err := vm.LoadImage(cfg.ImageDir); err == nil && img.MinMemoryMB > 0 && cfg.MemoryMB < img.MinMemoryMB {
			return usageErrorf("-m %s is below the least memory this image passes its workload with (%d MiB, measured by bespoke min-memory): give -m %dM or more",
				f.memory, img.MinMemoryMB, img.MinMemoryMB)
		}
	}
	set := visited(fs)
	if f.cpus < 0 || set["cpus"] && f.cpus == 0 {
		return usageErrorf("--cpus %d: want 1 or more", f.cpus)
	}
	if f.timeout < 0 || set["timeout"] && f.timeout == 0 {
		return usageErrorf("--timeout %s: want a positive duration (leave it out for no limit)", f.timeout)
	}
	if f.dryRun {
		// -n prints the QEMU command line: nothing runs to time or log.
		for _, name := range []string{"timeout", "log"} {
			if set[name] {
				return usageErrorf("--%s applies to a VM that runs, and -n only prints its command line: drop one of them", name)
			}
		}
	}
	switch f.accel {
	case vm.AccelAuto, vm.AccelKVM, vm.AccelTCG:
	default:
		return usageErrorf("--accel %q: want auto, kvm or tcg", f.accel)
	}

	if set["volume-size"] && len(f.volumes) == 0 {
		return usageErrorf("--volume-size applies to a volume -v creates: add -v HOSTFILE:/GUEST/PATH or drop it")
	}
	if len(f.volumes) > 0 {
		release, err := openVolumes(&cfg, f.volumes, f.volSize, f.dryRun)
		if err != nil {
			return err
		}
		defer release()
	}
	if f.dryRun {
		argv, err := vm.Command(cfg)
		if err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, vm.ShellQuote(argv))
		return nil
	}
	res, err := vm.Run(ctx, cfg)
	var initErr *vm.InitError
	switch {
	case errors.As(err, &initErr):
		return &ExitError{Code: res.ExitCode, Err: err}
	case err != nil:
		return err
	case res.ExitCode != 0:
		return &ExitError{Code: res.ExitCode}
	}
	return nil
}

// openVolumes adds the -v volumes to cfg: each one's guest path
// ({state} is the image's state directory), its file created when
// missing, locked and checked (vm.OpenVolume) unless dryRun. release
// unlocks them.
func openVolumes(cfg *vm.Config, specs []string, size string, dryRun bool) (release func(), err error) {
	sizeMB, err := vm.ParseMemory(size)
	if err != nil {
		return nil, usageErrorf("--volume-size: %v", err)
	}
	img, err := vm.LoadImage(cfg.ImageDir)
	if err != nil {
		return nil, err
	}
	if img.Disk == "" {
		return nil, usageErrorf("-v: image %s has an initramfs root, which lives in RAM and mounts no volumes: rebuild it with --root erofs", cfg.ImageDir)
	}
	var releases []func()
	release = func() {
		for _, r := range releases {
			r()
		}
	}
	for _, s := range specs {
		if strings.HasSuffix(s, ":{state}") {
			if img.StateDir == "" {
				release()
				return nil, usageErrorf("-v %s: image %s has no state directory (its spec has no setup): name the guest path", s, cfg.ImageDir)
			}
			s = strings.TrimSuffix(s, "{state}") + img.StateDir
		}
		host, guest, err := vm.ParseVolume(s)
		if err != nil {
			release()
			return nil, usageErrorf("-v: %v", err)
		}
		if !dryRun {
			r, err := vm.OpenVolume(host, sizeMB)
			if err != nil {
				release()
				return nil, err
			}
			releases = append(releases, r)
		}
		cfg.Volumes = append(cfg.Volumes, vm.Volume{Host: host, Guest: guest, Type: vm.VolumeFS, Image: img.Name})
	}
	return release, nil
}

// checkSeccompFlag refuses a --seccomp that is no mode ("" keeps the
// image's).
func checkSeccompFlag(v string) error {
	if v != "" && !slices.Contains(spec.SeccompModes, v) {
		return usageErrorf("--seccomp %q: want enforce, log or off", v)
	}
	return nil
}
