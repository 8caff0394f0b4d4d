// Package bench measures an image's workload on several kernels side by
// side in one run: the image's own kernel and, for a profile-guided image,
// the -O2 kernel of the same config it keeps. Runs alternate between the
// kernels so that a drift of the machine's speed touches all of them alike.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bespoke-os/bespoke/internal/costmodel"
	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// Options says what Run measures.
type Options struct {
	ImageDir string
	// Kernels are the kernel files (in the image directory) to compare,
	// by label; nil means Kernels(ImageDir).
	Kernels []Kernel
	Runs    int // per kernel (default 5)
	// Workload replaces the spec's workload ("" keeps it).
	Workload string
	// Metric is a regular expression with one group, a number in the
	// workload's output; the values of all its matches are summed into the
	// run's score (requests per second, say). "" measures the workload's
	// wall time only.
	Metric   string
	Accel    string
	Progress io.Writer
	// Model counts, with the cost model's QEMU plugin (Plugin, see
	// costmodel.FindPlugin), what each kernel executes per request of
	// the workload (Requests, default the spec's workload_requests; per
	// second of the workload when neither says). It needs TCG.
	Model    bool
	Plugin   string
	Requests int
	// RequestsFrom, a regular expression with one group around a number
	// in the workload's output (every match summed), gives the requests
	// of each run: over the spec's workload_requests, under Requests.
	RequestsFrom string
	// Seccomp overrides the mode of the image's seccomp filter
	// (vm.Config.Seccomp), to measure what the filter costs.
	Seccomp string
}

// Kernel is one kernel to measure.
type Kernel struct {
	Label string `json:"label"`
	File  string `json:"file"`
	// Vmlinux is the kernel's vmlinux in the image directory, for the
	// cost model's function names (or a System.map).
	Vmlinux string `json:"vmlinux,omitempty"`
	// Initramfs and Params, for a kernel that is not the image's own
	// (Debian's cloud kernel: internal/baseline), are booted with it: an
	// initramfs of the modules it needs, kernel parameters. File,
	// Vmlinux and Initramfs may be absolute paths.
	Initramfs string   `json:"initramfs,omitempty"`
	Params    []string `json:"params,omitempty"`
	// Bytes is the kernel file's size; ModulesBytes, the modules its
	// package ships beside it (0: none, every driver built in).
	Bytes        int64 `json:"bytes,omitempty"`
	ModulesBytes int64 `json:"modules_bytes,omitempty"`
}

// path returns p in the image directory dir, or p when it is absolute.
func path(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// Kernels returns the kernels an image holds: "pgo" and "o2" for a
// profile-guided image, else its one kernel as "image".
func Kernels(dir string) []Kernel {
	if _, err := os.Stat(filepath.Join(dir, image.O2KernelFile)); err == nil {
		return []Kernel{{Label: "o2", File: image.O2KernelFile, Vmlinux: image.O2VmlinuxFile}, {Label: "pgo", File: image.KernelFile, Vmlinux: image.VmlinuxFile}}
	}
	return []Kernel{{Label: "image", File: image.KernelFile, Vmlinux: image.VmlinuxFile}}
}

// Result is the measurement, per kernel in the order given.
type Result struct {
	Workload string   `json:"workload"`
	Metric   string   `json:"metric,omitempty"`
	Accel    string   `json:"accel"`
	Runs     int      `json:"runs"`
	Kernels  []Series `json:"kernels"`
	Date     string   `json:"date"`
	// Per is what the cost model's figures are per: "request" or "second
	// of workload" ("" without the model).
	Per string `json:"per,omitempty"`
}

// Series is one kernel's runs.
type Series struct {
	Kernel
	Seconds []float64 `json:"seconds"`          // workload wall time per run
	Scores  []float64 `json:"scores,omitempty"` // Metric per run
	Mean    Stat      `json:"mean_seconds"`
	Score   *Stat     `json:"score,omitempty"`
	// Init and Ready are each run's host seconds to the guest's /init and
	// to the program's readiness.
	Init  []float64 `json:"init_seconds,omitempty"`
	Ready []float64 `json:"ready_seconds,omitempty"`
	// Model is the cost model's figures (Options.Model).
	Model *Model `json:"model,omitempty"`
}

// Stat is a mean with its sample standard deviation.
type Stat struct {
	Mean   float64 `json:"mean"`
	Stddev float64 `json:"stddev"`
}

func stat(v []float64) Stat {
	var s Stat
	if len(v) == 0 {
		return s
	}
	for _, x := range v {
		s.Mean += x
	}
	s.Mean /= float64(len(v))
	if len(v) > 1 {
		var ss float64
		for _, x := range v {
			ss += (x - s.Mean) * (x - s.Mean)
		}
		s.Stddev = math.Sqrt(ss / float64(len(v)-1))
	}
	return s
}

// Run boots the image once per run and kernel, runs the workload against
// it, and returns the figures. A run whose workload fails is an error.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Runs <= 0 {
		opts.Runs = 5
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.Kernels == nil {
		opts.Kernels = Kernels(opts.ImageDir)
	}
	sp, err := image.ReadSpec(opts.ImageDir)
	if err != nil {
		return nil, err
	}
	workload := sp.Workload
	if opts.Workload != "" {
		workload = opts.Workload
	}
	if workload == "" {
		return nil, errors.New("benchmarking: the image's spec has no workload: give one with --workload")
	}
	var metric *regexp.Regexp
	if opts.Metric != "" {
		if metric, err = regexp.Compile(opts.Metric); err != nil || metric.NumSubexp() != 1 {
			return nil, fmt.Errorf("--metric %q: want a regular expression with one group, around a number", opts.Metric)
		}
	}
	res := &Result{Workload: workload, Metric: opts.Metric, Runs: opts.Runs, Date: time.Now().UTC().Format(time.RFC3339)}
	for _, k := range opts.Kernels {
		if fi, err := os.Stat(path(opts.ImageDir, k.File)); err == nil && k.Bytes == 0 {
			k.Bytes = fi.Size()
		}
		res.Kernels = append(res.Kernels, Series{Kernel: k})
	}
	var plugin string
	var requestsRe *regexp.Regexp
	requests := opts.Requests
	requestsFrom := opts.RequestsFrom
	if requests == 0 && requestsFrom == "" {
		requests, requestsFrom = sp.WorkloadRequests, sp.WorkloadRequestsFrom
	}
	if requests == 0 && requestsFrom != "" {
		if requestsRe, err = regexp.Compile(requestsFrom); err != nil || requestsRe.NumSubexp() != 1 {
			return nil, fmt.Errorf("workload requests %q: want a regular expression with one group, around a number", requestsFrom)
		}
	}
	if opts.Model {
		if opts.Accel == vm.AccelKVM {
			return nil, errors.New("--model counts what QEMU's TCG translator runs: it cannot run with --accel kvm")
		}
		opts.Accel = vm.AccelTCG
		if plugin, err = costmodel.FindPlugin(opts.Plugin); err != nil {
			return nil, err
		}
		res.Per = "second of workload"
		if requests > 0 || requestsRe != nil {
			res.Per = "request"
		}
		for i := range res.Kernels {
			res.Kernels[i].Model = &Model{}
		}
	}
	for run := 1; run <= opts.Runs; run++ {
		for i := range res.Kernels {
			s := &res.Kernels[i]
			var out string
			var secs float64
			var wlErr error
			var sess *costmodel.Session
			var snaps [4]timedSnap // ready, the workload's start, its end, an idle second later
			cfg := vm.Config{
				ImageDir: opts.ImageDir, Kernel: path(opts.ImageDir, s.File), Accel: opts.Accel, Seccomp: opts.Seccomp,
				Params:    s.Params,
				StopGuest: true, Timeout: sp.ReadyTimeout + sp.WorkloadTimeout + sp.StopTimeout + 2*time.Minute,
				LogPath: filepath.Join(opts.ImageDir, "bench-console.log"),
				OnReady: func(ctx context.Context, ports map[int]int) error {
					w, err := sp.Expand(workload, "127.0.0.1", ports)
					if err != nil {
						return err
					}
					if sess != nil {
						// The guest's background (timer ticks, the
						// program's own timers) over an idle second,
						// before the workload and after it.
						if snaps[0], snaps[1], err = idlePair(ctx, sess, "ready", "start"); err != nil {
							return err
						}
					}
					wl, err := image.RunWorkload(ctx, w, sp.WorkloadTimeout, io.Discard)
					if err != nil {
						return err
					}
					if sess != nil {
						if snaps[2], snaps[3], err = idlePair(ctx, sess, "end", "after"); err != nil {
							return err
						}
					}
					if wl.ExitCode != 0 {
						wlErr = fmt.Errorf("the workload failed (exit %d) on kernel %s:\n%s", wl.ExitCode, s.Label, wl.Output)
					}
					secs, out = wl.Seconds, wl.Full
					return nil
				},
			}
			if s.Initramfs != "" {
				cfg.Initramfs = path(opts.ImageDir, s.Initramfs)
			}
			if opts.Model {
				if sess, err = costmodel.NewSession(plugin); err != nil {
					return nil, err
				}
				cfg.Plugin = sess.PluginArg()
			}
			r, err := vm.Run(ctx, cfg)
			if sess != nil {
				sess.Close()
			}
			if err != nil {
				if sess != nil && strings.Contains(err.Error(), "plugin") {
					err = fmt.Errorf("%w\n(QEMU could not load the cost model's plugin %s: a QEMU built without plugin support, or a plugin built for another QEMU: rebuild it with make plugin)", err, plugin)
				}
				return nil, fmt.Errorf("benchmarking kernel %s, run %d: %w", s.Label, run, err)
			}
			if wlErr != nil {
				return nil, wlErr
			}
			if sess != nil {
				per := float64(requests)
				if requestsRe != nil {
					n, k := Score(requestsRe, out)
					if k == 0 || n <= 0 {
						return nil, fmt.Errorf("workload requests %q: no request count in the workload's output:\n%s", requestsFrom, lastLines(out, 20))
					}
					per = n
				}
				if res.Per != "request" {
					per = secs
				}
				mr, err := s.Model.add(snaps, per)
				if err != nil {
					return nil, fmt.Errorf("benchmarking kernel %s, run %d: %w", s.Label, run, err)
				}
				fmt.Fprintf(opts.Progress, "bench: run %d/%d, kernel %s: per %s: %.0f kernel and %.0f user instructions, %.1f kernel L1i misses\n",
					run, opts.Runs, s.Label, res.Per, mr.KernelInsns, mr.UserInsns, mr.L1iMisses)
			}
			res.Accel = r.Accel
			s.Seconds = append(s.Seconds, secs)
			s.Init = append(s.Init, r.Boot.Init.Seconds())
			s.Ready = append(s.Ready, r.Boot.Ready.Seconds())
			line := fmt.Sprintf("bench: run %d/%d, kernel %s: workload %.2fs", run, opts.Runs, s.Label, secs)
			if metric != nil {
				score, n := Score(metric, out)
				if n == 0 {
					return nil, fmt.Errorf("--metric %q matched nothing in the workload's output:\n%s", opts.Metric, lastLines(out, 20))
				}
				s.Scores = append(s.Scores, score)
				line += fmt.Sprintf(", metric %.1f", score)
			}
			fmt.Fprintln(opts.Progress, line)
		}
	}
	for i := range res.Kernels {
		s := &res.Kernels[i]
		s.Mean = stat(s.Seconds)
		if len(s.Scores) > 0 {
			st := stat(s.Scores)
			s.Score = &st
		}
		if s.Model != nil {
			if err := s.Model.finish(path(opts.ImageDir, s.Vmlinux)); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// Table renders the result as Markdown, each kernel against the first.
func (r *Result) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "workload: `%s`; %d runs per kernel, alternating, under %s\n\n", r.Workload, r.Runs, r.Accel)
	b.WriteString("| kernel | workload seconds (mean ± sd) | vs " + r.Kernels[0].Label + " |")
	if r.Metric != "" {
		b.WriteString(" metric (mean ± sd) | vs " + r.Kernels[0].Label + " |")
	}
	b.WriteString("\n| --- | --- | --- |")
	if r.Metric != "" {
		b.WriteString(" --- | --- |")
	}
	b.WriteString("\n")
	base := r.Kernels[0]
	for _, s := range r.Kernels {
		fmt.Fprintf(&b, "| %s | %.3f ± %.3f | %+.1f%% |", s.Label, s.Mean.Mean, s.Mean.Stddev, pct(s.Mean.Mean, base.Mean.Mean))
		if s.Score != nil && base.Score != nil {
			fmt.Fprintf(&b, " %.1f ± %.1f | %+.1f%% |", s.Score.Mean, s.Score.Stddev, pct(s.Score.Mean, base.Score.Mean))
		}
		b.WriteString("\n")
	}
	b.WriteString(r.bootTable())
	if r.Per != "" {
		b.WriteString(r.modelTable())
	}
	return b.String()
}

// bootTable renders each kernel's bytes and its boots: host seconds to
// /init and to ready, min / median / max over the runs.
func (r *Result) bootTable() string {
	var b strings.Builder
	b.WriteString("\n| kernel | kernel bytes | modules | boot to /init, s (min / median / max) | to ready, s (min / median / max) |\n| --- | --- | --- | --- | --- |\n")
	for _, s := range r.Kernels {
		if len(s.Init) == 0 {
			return "" // a result from before boots were recorded
		}
		mods := "none"
		if s.ModulesBytes > 0 {
			mods = fmt.Sprintf("%.2f MB", float64(s.ModulesBytes)/(1<<20))
		}
		fmt.Fprintf(&b, "| %s | %.2f MB | %s | %s | %s |\n", s.Label, float64(s.Bytes)/(1<<20), mods, spread(s.Init), spread(s.Ready))
	}
	return b.String()
}

// spread formats the min, median and max of v.
func spread(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f / %.2f / %.2f", slices.Min(v), Median(v), slices.Max(v))
}

// Median returns the median of v (0 for none).
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func pct(v, base float64) float64 {
	if base == 0 {
		return 0
	}
	return (v/base - 1) * 100
}

// Score sums the numbers metric's group matches in the whole of out, and
// says how many it matched.
func Score(metric *regexp.Regexp, out string) (sum float64, n int) {
	for _, m := range metric.FindAllStringSubmatch(out, -1) {
		if v, err := strconv.ParseFloat(m[1], 64); err == nil {
			sum += v
			n++
		}
	}
	return sum, n
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
