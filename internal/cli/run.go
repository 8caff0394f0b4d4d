package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

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
