package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bespoke-os/bespoke/internal/bench"
)

// BenchFile is where bespoke bench writes its result in the image directory.
const BenchFile = "bench.json"

func runBench(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "bench")
	runs := fs.Int("runs", 5, "boots per kernel (runs alternate between the kernels)")
	workload := fs.String("workload", "", "a workload instead of the spec's ({host} and {port} are filled in)")
	metric := fs.String("metric", "", "a regular expression with one group around a number in the workload's output, summed per run (e.g. '([0-9.]+) requests per second')")
	accel := fs.String("accel", "auto", "accelerator: auto, kvm or tcg")
	dir, err := oneImageDir(fs, args)
	if err != nil {
		return err
	}
	if *runs < 1 {
		return usageErrorf("--runs %d: want 1 or more", *runs)
	}
	res, err := bench.Run(ctx, bench.Options{
		ImageDir: dir, Runs: *runs, Workload: *workload, Metric: *metric, Accel: *accel, Progress: env.Stderr,
	})
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, BenchFile), append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprint(env.Stdout, res.Table())
	return nil
}
