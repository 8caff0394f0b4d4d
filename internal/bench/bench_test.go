package bench

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
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
		{Kernel: Kernel{"o2", "bzImage.o2"}, Mean: Stat{2, 0.1}, Score: &Stat{100, 5}},
		{Kernel: Kernel{"pgo", "bzImage"}, Mean: Stat{1.8, 0.1}, Score: &Stat{110, 4}},
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
