package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/bespoke-os/bespoke/internal/baseline"
	"github.com/bespoke-os/bespoke/internal/bench"
	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/initramfs"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/vm"
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
	baselineFlag := fs.Bool("baseline", false, "also measure the image on Debian's cloud kernel for Linux 6.12, as a stock baseline (fetched once with apt-get download into the cache; images with --target qemu-pc and an erofs root)")
	requests := fs.String("requests", "", "with --model: the requests the workload makes, a number or a regular expression with one group around a number in its output, summed (default: the spec's workload_requests; without either, figures are per second of workload)")
	var kernelOf stringList
	fs.Var(&kernelOf, "kernel-of", "also measure the image on the kernel of this other image directory, labelled with that image's name (repeatable): another application's profile-guided kernel of the same options, say (scripts/cross.sh); it must have every option and syscall this image needs, as --kernel-from checks; with --model, bespoke report draws the images' matrix")
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
	var kernels []bench.Kernel
	if *baselineFlag || len(kernelOf) > 0 {
		kernels = bench.Kernels(dir)
	}
	for i, other := range kernelOf {
		if same(other, dir) {
			return usageErrorf("--kernel-of %s is the image measured: its kernels are measured anyway", other)
		}
		for _, o := range kernelOf[:i] {
			if same(o, other) {
				return usageErrorf("--kernel-of %s is given twice", other)
			}
		}
	}
	for _, other := range kernelOf {
		k, err := otherKernel(dir, other)
		if err != nil {
			return err
		}
		kernels = append(kernels, *k)
	}
	if *baselineFlag {
		b, err := baselineKernel(ctx, env, dir)
		if err != nil {
			return err
		}
		kernels = append(kernels, *b)
	}
	if err := uniqueLabels(kernels); err != nil {
		return err
	}
	res, err := bench.Run(ctx, bench.Options{
		ImageDir: dir, Kernels: kernels, Runs: *runs, Workload: *workload, Metric: *metric, Accel: *accel, Progress: env.Stderr,
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

// same reports whether paths a and b name one directory.
func same(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	if errA != nil || errB != nil {
		return filepath.Clean(a) == filepath.Clean(b)
	}
	return os.SameFile(fa, fb)
}

// uniqueLabels refuses two kernels of one label: an image of --kernel-of
// named as one of the image's own kernels, or as another's.
func uniqueLabels(kernels []bench.Kernel) error {
	for i, k := range kernels {
		for _, o := range kernels[:i] {
			if o.Label == k.Label {
				return usageErrorf("two kernels would be labelled %q (%s and %s): give --kernel-of images of other names", k.Label, o.File, k.File)
			}
		}
	}
	return nil
}

// otherKernel is bench's kernel of the image in other (--kernel-of),
// labelled with that image's name, after checking that the image in dir
// can run on it.
func otherKernel(dir, other string) (*bench.Kernel, error) {
	if err := image.CheckKernelOf(dir, other); err != nil {
		return nil, fmt.Errorf("--kernel-of %s: %w", other, err)
	}
	img, err := vm.LoadImage(other)
	if err != nil {
		return nil, fmt.Errorf("--kernel-of %s: %w", other, err)
	}
	abs, err := filepath.Abs(other)
	if err != nil {
		return nil, err
	}
	label := img.Name
	if label == "" {
		label = strings.TrimSuffix(filepath.Base(abs), ".image")
	}
	return &bench.Kernel{Label: label, File: filepath.Join(abs, image.KernelFile), Vmlinux: filepath.Join(abs, image.VmlinuxFile)}, nil
}

// BaselineInitramfs is the initramfs bespoke bench --baseline writes into
// the image directory: the guest init and the modules Debian's cloud
// kernel needs to mount the image's root (internal/baseline).
const BaselineInitramfs = "bench-baseline.cpio"

// baselineKernel fetches Debian's cloud kernel and writes the initramfs
// that boots the image's root with it: bench's "debian-cloud" kernel.
func baselineKernel(ctx context.Context, env *Env, dir string) (*bench.Kernel, error) {
	img, err := vm.LoadImage(dir)
	if err != nil {
		return nil, err
	}
	if img.Target != vm.TargetPC {
		return nil, usageErrorf("--baseline: image %s targets %s; Debian's cloud kernel does not boot on QEMU's -M microvm (its TSC calibration fails there), so the comparison runs on -M pc: build the image with --target qemu-pc", dir, img.Target)
	}
	if img.Disk == "" {
		return nil, usageErrorf("--baseline: image %s has an initramfs root; the baseline boots the image's erofs root disk: build it with --root erofs", dir)
	}
	cache, err := ksrc.CacheDir()
	if err != nil {
		return nil, err
	}
	k, err := baseline.Fetch(ctx, cache, env.Stderr)
	if err != nil {
		return nil, err
	}
	mods, err := k.ModulePaths(baseline.Modules)
	if err != nil {
		return nil, err
	}
	init, err := initramfs.InitBinary(ctx, cache)
	if err != nil {
		return nil, err
	}
	out, err := filepath.Abs(filepath.Join(dir, BaselineInitramfs))
	if err != nil {
		return nil, err
	}
	if err := baseline.Initramfs(init, mods, out); err != nil {
		return nil, fmt.Errorf("writing the baseline's initramfs: %w", err)
	}
	fmt.Fprintf(env.Stderr, "baseline: %s (%s): vmlinuz %.2f MB, modules %.2f MB (%d loaded at boot from %s)\n",
		k.Package, k.Version, float64(k.VmlinuzBytes)/(1<<20), float64(k.ModulesBytes)/(1<<20), len(mods), out)
	// nokaslr: the cost model names functions from System.map's addresses.
	return &bench.Kernel{Label: "debian-cloud", File: k.Vmlinuz, Vmlinux: k.SystemMap, Initramfs: out,
		Params: []string{"nokaslr"}, ModulesBytes: k.ModulesBytes}, nil
}
