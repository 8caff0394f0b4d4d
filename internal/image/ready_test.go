package image

import (
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/spec"
)

// TestTraceReady: without a ready condition, a traced program with TCP
// ports is ready when one of them accepts (as in the guest); before, its
// workload never ran.
func TestTraceReady(t *testing.T) {
	for _, tc := range []struct {
		yaml  string
		ports map[int]int
		want  string
	}{
		{"cmd: [a]\nports: [80, 443, 53/udp]\nworkload: curl {host}\n", map[int]int{80: 8080, 443: 443, 53: 53}, "any of tcp:8080, tcp:443"},
		{"cmd: [a]\nports: [6379]\nworkload: redis-cli\n", map[int]int{6379: 40000}, "tcp:40000"},
		{"cmd: [a]\nports: [6379]\nready: 'log:ready'\nworkload: redis-cli\n", map[int]int{6379: 6379}, "log:ready"},
		{"cmd: [a]\n", nil, ""},
	} {
		sp, err := spec.Parse("bespoke.yaml", []byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		r, err := traceReady(sp, tc.ports)
		if err != nil {
			t.Fatal(err)
		}
		if r.String() != tc.want {
			t.Errorf("%q: ready %q, want %q", tc.yaml, r, tc.want)
		}
	}
}

// TestGaps: the trace's facts no option provides reach the report.
func TestGaps(t *testing.T) {
	m := &manifest.Manifest{Syscalls: []manifest.Syscall{{Name: "uselib", Count: 1}, {Name: "read", Count: 3}}}
	got := gaps(m)
	if len(got) != 1 || !strings.HasPrefix(got[0], "uselib x1: ") {
		t.Errorf("gaps %q, want uselib's with its reason", got)
	}
}
