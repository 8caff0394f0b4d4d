package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bespoke-os/bespoke/internal/costmodel"
)

// topFunctions is how many kernel functions the cost model lists.
const topFunctions = 20

// Model is one kernel's cost-model figures over the runs: per request
// (or second of workload, see Result.Per), the mean and sample standard
// deviation of the runs, and the kernel functions that executed the most
// instructions, over all runs.
type Model struct {
	Runs        []ModelRun `json:"runs"`
	KernelInsns Stat       `json:"kernel_insns"`
	UserInsns   Stat       `json:"user_insns"`
	KernelTBs   Stat       `json:"kernel_tbs"`
	L1iMisses   Stat       `json:"kernel_l1i_misses"`
	// BootInit and BootReady are the instructions from QEMU's start to
	// the init's first instruction, and to the program's readiness.
	BootInit  Stat `json:"boot_init_insns"`
	BootReady Stat `json:"boot_ready_insns"`
	// Functions are the kernel functions with the most instructions per
	// request (the mean over the runs).
	Functions []costmodel.FuncCost `json:"functions"`
	// FunctionsNote says why Functions is empty: the kernel's symbols
	// could not be read.
	FunctionsNote string `json:"functions_note,omitempty"`
	// Cache says which L1i the misses are of.
	Cache string `json:"cache"`

	blocks [][]costmodel.Block // per run, what the workload ran
	per    []float64
}

// ModelRun is one run's figures: what the workload executed, less the
// guest's background over the same time, per request. The background's
// rate is the lower of two idle seconds', one before the workload and one
// after it: timer ticks and the program's own timers run in both, while
// work that comes in bursts (a database's start-up, its flushing after
// the workload) shows in one of them at most. Without the correction the
// figures grow with the workload's wall time, which under TCG follows the
// host's load (measured on redis: +3.6% kernel instructions per request
// in a run that took 3.2 s instead of 1.8 s). With only the idle second
// before the workload, mariadb's kernel instructions per request came out
// negative: InnoDB's start-up work filled that second.
type ModelRun struct {
	KernelInsns float64 `json:"kernel_insns"`
	UserInsns   float64 `json:"user_insns"`
	KernelTBs   float64 `json:"kernel_tbs"`
	L1iMisses   float64 `json:"kernel_l1i_misses"`
	// Raw is the kernel instructions per request without the correction.
	RawKernelInsns float64 `json:"raw_kernel_insns"`
	// Background is the idle guest's kernel instructions per second.
	Background float64 `json:"background_kernel_insns_per_sec"`
	BootInit   uint64  `json:"boot_init_insns"`
	BootReady  uint64  `json:"boot_ready_insns"`
}

// timedSnap is a snapshot and when the host had it.
type timedSnap struct {
	*costmodel.Snapshot
	at time.Time
}

// idleWindow is how long bench lets the ready guest idle to measure its
// background.
const idleWindow = time.Second

func snap(ctx context.Context, s *costmodel.Session, name string) (timedSnap, error) {
	sn, err := s.Snap(ctx, name)
	return timedSnap{sn, time.Now()}, err
}

// idlePair takes snapshot a, lets the guest idle for idleWindow, and takes
// snapshot b.
func idlePair(ctx context.Context, s *costmodel.Session, a, b string) (timedSnap, timedSnap, error) {
	first, err := snap(ctx, s, a)
	if err != nil {
		return first, timedSnap{}, err
	}
	select {
	case <-ctx.Done():
		return first, timedSnap{}, ctx.Err()
	case <-time.After(idleWindow):
	}
	second, err := snap(ctx, s, b)
	return first, second, err
}

// add records a run from the snapshots at readiness, the workload's
// start, its end and an idle second later, divided by per (the requests,
// or the workload's seconds).
func (m *Model) add(s [4]timedSnap, per float64) (ModelRun, error) {
	for _, x := range s {
		if x.Snapshot == nil {
			return ModelRun{}, errors.New("cost model: no snapshots of the workload (did the program become ready?)")
		}
	}
	if per <= 0 {
		return ModelRun{}, fmt.Errorf("cost model: nothing to divide by (%v)", per)
	}
	d := s[2].Sub(s[1].Snapshot)
	secs := s[2].at.Sub(s[1].at).Seconds()
	idle, idleSecs := s[1].Sub(s[0].Snapshot), s[1].at.Sub(s[0].at).Seconds()
	after, afterSecs := s[3].Sub(s[2].Snapshot), s[3].at.Sub(s[2].at).Seconds()
	if float64(after.KernelInsns)/afterSecs < float64(idle.KernelInsns)/idleSecs {
		idle, idleSecs = after, afterSecs
	}
	less := func(v, bg uint64) float64 { return (float64(v) - float64(bg)/idleSecs*secs) / per }
	r := ModelRun{
		KernelInsns:    less(d.KernelInsns, idle.KernelInsns),
		UserInsns:      less(d.UserInsns, idle.UserInsns),
		KernelTBs:      less(d.KernelTBs, idle.KernelTBs),
		L1iMisses:      less(d.L1iMisses, idle.L1iMisses),
		RawKernelInsns: float64(d.KernelInsns) / per,
		Background:     float64(idle.KernelInsns) / idleSecs,
		BootInit:       s[0].FirstUser,
		BootReady:      s[0].Insns(),
	}
	m.Runs = append(m.Runs, r)
	m.blocks = append(m.blocks, d.Blocks)
	m.per = append(m.per, per)
	return r, nil
}

// finish computes the statistics and names the top functions with the
// kernel's vmlinux.
func (m *Model) finish(vmlinux string) error {
	var k, u, tb, miss, bi, br []float64
	for _, r := range m.Runs {
		k, u, tb, miss = append(k, r.KernelInsns), append(u, r.UserInsns), append(tb, r.KernelTBs), append(miss, r.L1iMisses)
		bi, br = append(bi, float64(r.BootInit)), append(br, float64(r.BootReady))
	}
	m.KernelInsns, m.UserInsns, m.KernelTBs, m.L1iMisses = stat(k), stat(u), stat(tb), stat(miss)
	m.BootInit, m.BootReady = stat(bi), stat(br)
	m.Cache = costmodel.CacheModel
	if len(m.blocks) == 0 {
		return nil
	}
	syms, err := costmodel.ReadSymbols(vmlinux)
	if err != nil {
		// The counts stand without names (Debian's cloud kernel ships a
		// stub System.map).
		m.FunctionsNote = err.Error()
		return nil
	}
	// Each run's functions per request, averaged over the runs.
	sums := map[string]float64{}
	for i, bs := range m.blocks {
		syms.Sum(sums, bs, m.per[i]*float64(len(m.blocks)))
	}
	m.Functions = costmodel.Top(sums, topFunctions)
	return nil
}

// modelTable renders the cost model's figures, each kernel against the
// first.
func (r *Result) modelTable() string {
	var b strings.Builder
	base := r.Kernels[0].Model
	fmt.Fprintf(&b, "\ncost model (QEMU TCG plugin; L1i: %s), per %s, less the idle guest's background, mean ± sd of %d runs:\n\n", costmodel.CacheModel, r.Per, r.Runs)
	b.WriteString("| kernel | kernel instructions | vs " + r.Kernels[0].Label + " | user instructions | kernel blocks (taken branches) | vs " + r.Kernels[0].Label + " | kernel L1i misses | vs " + r.Kernels[0].Label + " | boot to /init (M insns) | to ready (M insns) |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range r.Kernels {
		m := s.Model
		fmt.Fprintf(&b, "| %s | %.0f ± %.0f | %+.1f%% | %.0f ± %.0f | %.0f ± %.0f | %+.1f%% | %.1f ± %.1f | %+.1f%% | %.1f | %.1f |\n",
			s.Label, m.KernelInsns.Mean, m.KernelInsns.Stddev, pct(m.KernelInsns.Mean, base.KernelInsns.Mean),
			m.UserInsns.Mean, m.UserInsns.Stddev,
			m.KernelTBs.Mean, m.KernelTBs.Stddev, pct(m.KernelTBs.Mean, base.KernelTBs.Mean),
			m.L1iMisses.Mean, m.L1iMisses.Stddev, pct(m.L1iMisses.Mean, base.L1iMisses.Mean),
			m.BootInit.Mean/1e6, m.BootReady.Mean/1e6)
	}
	for _, s := range r.Kernels {
		if s.Model.FunctionsNote != "" {
			fmt.Fprintf(&b, "\nkernel %s: no function names: %s\n", s.Label, s.Model.FunctionsNote)
			continue
		}
		fmt.Fprintf(&b, "\nkernel %s: the %d functions with the most instructions per %s\n\n| function | instructions |\n| --- | --- |\n", s.Label, len(s.Model.Functions), r.Per)
		for _, f := range s.Model.Functions {
			fmt.Fprintf(&b, "| %s | %.0f |\n", f.Name, f.Insns)
		}
	}
	return b.String()
}
