package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/bespoke-os/bespoke/internal/verify"
)

// verifyFlags are the flags of bespoke verify.
type verifyFlags struct {
	fix       bool
	maxRounds int
	noTrace   bool
	accel     string
	jobs      int
	workload  string
}

func runVerify(ctx context.Context, env *Env, args []string) error {
	var f verifyFlags
	fs := newFlagSet(env, "verify")
	fs.BoolVar(&f.fix, "fix", false, "add what a failed round found missing (files, kernel options) to the image, rebuild it, and check again")
	fs.IntVar(&f.maxRounds, "max-rounds", 3, "with --fix, give up after `N` boots")
	fs.BoolVar(&f.noTrace, "no-trace", false, "run the program without the guest tracer (faster; failures are not classified)")
	fs.StringVar(&f.accel, "accel", "auto", "accelerator: auto (KVM when /dev/kvm is usable, else TCG), kvm or tcg")
	fs.StringVar(&f.workload, "workload", "", "run this `command` against the guest instead of the spec's workload ({host} and {port} as in the spec): a code path the build's trace did not see")
	fs.IntVar(&f.jobs, "j", 0, "make -j for a kernel rebuild (default: the number of CPUs)")
	dir, err := oneImageDir(fs, args)
	if err != nil {
		return err
	}
	if f.maxRounds < 1 {
		return usageErrorf("--max-rounds %d: want 1 or more", f.maxRounds)
	}
	if f.fix && f.noTrace {
		return usageErrorf("--fix repairs what the diagnosis boot finds, and --no-trace skips that boot: drop one of them")
	}
	// Without --fix there is one round and no rebuild: these would do nothing.
	set := visited(fs)
	for _, name := range []string{"max-rounds", "j"} {
		if set[name] && !f.fix {
			return usageErrorf("--%s applies to --fix (its rounds and kernel rebuilds): add --fix or drop it", name)
		}
	}
	res, err := verify.Run(ctx, verify.Options{
		ImageDir: dir, Fix: f.fix, MaxRounds: f.maxRounds, NoTrace: f.noTrace,
		Accel: f.accel, Jobs: f.jobs, Progress: env.Stderr, Workload: f.workload,
	})
	if res != nil {
		fmt.Fprintln(env.Stdout, res.Summary())
	}
	if errors.Is(err, verify.ErrFailed) {
		return &ExitError{Code: 1, Err: err}
	}
	return err
}
