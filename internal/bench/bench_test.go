package bench

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/costmodel"
)

func TestStat(t *testing.T) {
	s := stat([]float64{2, 4, 4, 4, 5, 5, 7, 9})
	if s.Mean != 5 || math.Abs(s.Stddev-2.138) > 0.001 {
		t.Errorf("stat = %+v, want mean 5, sd 2.138", s)
	}
	if s := stat([]float64{3}); s.Mean != 3 || s.Stddev != 0 {
		t.Errorf("stat of one value = %+v, want 3 ± 0", s)
	}
}

func TestTable(t *testing.T) {
	r := &Result{Workload: "w", Runs: 2, Accel: "tcg", Metric: "x", Kernels: []Series{
		{Kernel: Kernel{Label: "o2", File: "bzImage.o2"}, Mean: Stat{2, 0.1}, Score: &Stat{100, 5}},
		{Kernel: Kernel{Label: "pgo", File: "bzImage"}, Mean: Stat{1.8, 0.1}, Score: &Stat{110, 4}},
	}}
	got := r.Table()
	for _, want := range []string{"| o2 | 2.000 ± 0.100 | +0.0% | 100.0 ± 5.0 | +0.0% |", "| pgo | 1.800 ± 0.100 | -10.0% | 110.0 ± 4.0 | +10.0% |"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

// TestScore: --metric sums every match in the workload's whole output,
// not its last lines (a client that prints a result per test, then a long
// summary).
func TestScore(t *testing.T) {
	var out strings.Builder
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&out, "TEST%d: %d.5 requests per second\n", i, i)
	}
	for i := 0; i < 30; i++ {
		out.WriteString("summary line\n")
	}
	sum, n := Score(regexp.MustCompile(`([0-9.]+) requests per second`), out.String())
	if n != 100 || sum != 5100 {
		t.Errorf("Score = %v over %d matches, want 5100 over 100", sum, n)
	}
}

func TestModelTable(t *testing.T) {
	m := func(k, miss float64) *Model {
		return &Model{KernelInsns: Stat{k, 100}, UserInsns: Stat{5000, 20}, KernelTBs: Stat{k / 5, 10}, L1iMisses: Stat{miss, 3},
			BootInit: Stat{4.2e8, 0}, BootReady: Stat{9e8, 0}, Functions: []costmodel.FuncCost{{Name: "do_syscall_64", Insns: 120}}}
	}
	r := &Result{Workload: "w", Runs: 5, Accel: "tcg", Per: "request", Kernels: []Series{
		{Kernel: Kernel{Label: "o2"}, Mean: Stat{2, 0.1}, Model: m(14000, 800)},
		{Kernel: Kernel{Label: "pgo"}, Mean: Stat{2, 0.1}, Model: m(12600, 600)},
	}}
	got := r.Table()
	for _, want := range []string{
		"per request, less the idle guest's background, mean ± sd of 5 runs",
		"| o2 | 14000 ± 100 | +0.0% | 5000 ± 20 | 2800 ± 10 | +0.0% | 800.0 ± 3.0 | +0.0% | 420.0 | 900.0 |",
		"| pgo | 12600 ± 100 | -10.0% |",
		"| 600.0 ± 3.0 | -25.0% |",
		"| do_syscall_64 | 120 |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

// The workload's counts less the idle guest's background over the same
// time: 2000 kernel instructions a second idle after the workload (3000
// in the second before it: the lower rate counts), 10000 over the
// workload's 2 s, 100 requests: (10000 - 2*2000) / 100.
func TestModelBackground(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(secs float64, k, u uint64) timedSnap {
		return timedSnap{&costmodel.Snapshot{Counters: costmodel.Counters{KernelInsns: k, UserInsns: u, FirstUser: 50}}, t0.Add(time.Duration(secs * float64(time.Second)))}
	}
	var m Model
	r, err := m.add([4]timedSnap{at(0, 1000, 100), at(1, 4000, 200), at(3, 14000, 1200), at(4, 16000, 1300)}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if r.KernelInsns != 60 || r.RawKernelInsns != 100 || r.Background != 2000 || r.UserInsns != 8 || r.BootInit != 50 || r.BootReady != 1100 {
		t.Errorf("run %+v: want 60 kernel (100 raw, 2000/s background), 8 user, boot 50 and 1100", r)
	}
	if _, err := m.add([4]timedSnap{at(0, 1, 1), {}, at(1, 2, 2), at(2, 3, 3)}, 100); err == nil {
		t.Error("add without a snapshot: no error")
	}
}
