package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

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
	model := fs.Bool("model", false, "also count, with bespoke's QEMU plugin (TCG), each kernel's instructions, taken branches and L1i misses per request of the workload, its top functions and its boot (docs/perf.md)")
	plugin := fs.String("plugin", "", "the cost model's QEMU plugin (default: $BESPOKE_COST_PLUGIN, else bespoke-cost.so next to bespoke; make plugin builds it)")
	seccomp := fs.String("seccomp", "", "the image's seccomp filter for these boots: enforce, log or off (default: the image's), to measure what it costs")
	requests := fs.String("requests", "", "with --model: the requests the workload makes, a number or a regular expression with one group around a number in its output, summed (default: the spec's workload_requests; without either, figures are per second of workload)")
	dir, err := oneImageDir(fs, args)
	if err != nil {
		return err
	}
	if *runs < 1 {
		return usageErrorf("--runs %d: want 1 or more", *runs)
	}
	set := visited(fs)
	for _, name := range []string{"plugin", "requests"} {
		if set[name] && !*model {
			return usageErrorf("--%s applies to the cost model: add --model or drop it", name)
		}
	}
	var nreq int
	var reqFrom string
	if set["requests"] {
		if n, err := strconv.Atoi(*requests); err == nil {
			if n < 1 {
				return usageErrorf("--requests %d: want the number of requests the workload makes", n)
			}
			nreq = n
		} else if re, err := regexp.Compile(*requests); err != nil || re.NumSubexp() != 1 {
			return usageErrorf("--requests %q: want a number, or a regular expression with one group around a number in the workload's output", *requests)
		} else {
			reqFrom = *requests
		}
	}
	if err := checkSeccompFlag(*seccomp); err != nil {
		return err
	}
	if *model && *accel == "kvm" {
		return usageErrorf("--model counts what QEMU's TCG translator runs: it cannot run with --accel kvm")
	}
	res, err := bench.Run(ctx, bench.Options{
		ImageDir: dir, Runs: *runs, Workload: *workload, Metric: *metric, Accel: *accel, Progress: env.Stderr,
		Model: *model, Plugin: *plugin, Requests: nreq, RequestsFrom: reqFrom, Seccomp: *seccomp,
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
