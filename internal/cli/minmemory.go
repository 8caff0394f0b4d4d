package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/bespoke-os/bespoke/internal/verify"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// runMinMemory finds the smallest -m with which an image passes its
// workload, by bisection over boots, and records it in report.json.
func runMinMemory(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "min-memory")
	low := fs.String("low", "16M", "the bottom of the search")
	high := fs.String("high", "", "the top of the search, which must pass (default: the image's memory)")
	step := fs.Int("step", 1, "the resolution of the search, in MiB")
	accel := fs.String("accel", "auto", "accelerator: auto, kvm or tcg")
	baselineFlag := fs.Bool("baseline", false, "search with Debian's cloud kernel instead of the image's (as bespoke bench --baseline boots it); the result is printed, not recorded")
	dir, err := oneImageDir(fs, args)
	if err != nil {
		return err
	}
	if *step < 1 {
		return usageErrorf("--step %d: want 1 MiB or more", *step)
	}
	opts := verify.MemoryOptions{ImageDir: dir, Accel: *accel, Step: *step, Progress: env.Stderr}
	for _, f := range []struct {
		name, v string
		dst     *int
	}{{"low", *low, &opts.Low}, {"high", *high, &opts.High}} {
		if f.v == "" {
			continue
		}
		if *f.dst, err = vm.ParseMemory(f.v); err != nil {
			return usageErrorf("--%s: %v", f.name, err)
		}
	}
	if *baselineFlag {
		b, err := baselineKernel(ctx, env, dir)
		if err != nil {
			return err
		}
		opts.Kernel, opts.Initramfs, opts.Params = b.File, b.Initramfs, b.Params
	}
	res, err := verify.MinMemory(ctx, opts)
	if errors.Is(err, verify.ErrFailed) {
		return &ExitError{Code: 1, Err: err}
	}
	if err != nil {
		return err
	}
	if *baselineFlag {
		fmt.Fprintf(env.Stdout, "%d MiB: the least memory with which %s passes its workload on Debian's cloud kernel (to %d MiB, in %d boots)\n",
			res.MinMB, dir, res.Step, len(res.Tries))
		return nil
	}
	fmt.Fprintf(env.Stdout, "%d MiB: the least memory with which %s passes its workload (to %d MiB, in %d boots; recorded in report.json)\n",
		res.MinMB, dir, res.Step, len(res.Tries))
	return nil
}
