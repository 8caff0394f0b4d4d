package testkernel

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/kbuild"
	"github.com/bespoke-os/bespoke/internal/vm"
)

func TestEnableFor(t *testing.T) {
	micro, pc := EnableFor(vm.TargetMicrovm), EnableFor(vm.TargetPC)
	if !slices.Equal(micro, Enable) {
		t.Errorf("EnableFor(qemu-microvm) = %v, want all of Enable", micro)
	}
	for _, sym := range pcTransport {
		if slices.Contains(pc, sym) || !slices.Contains(micro, sym) {
			t.Errorf("%s: in the qemu-pc list %v, in the qemu-microvm list %v; want it only in qemu-microvm's (qemu-pc's base asks for it)",
				sym, slices.Contains(pc, sym), slices.Contains(micro, sym))
		}
	}
	if len(pc) != len(Enable)-len(pcTransport) {
		t.Errorf("EnableFor(qemu-pc) has %d options, want %d", len(pc), len(Enable)-len(pcTransport))
	}
	pc[0] = "CHANGED"
	if Enable[0] == "CHANGED" {
		t.Error("EnableFor returned Enable itself: a caller's append or edit changes it")
	}
}

func TestSummary(t *testing.T) {
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	built := []Built{
		{Key: "aaaa", Objects: 880, Seconds: 400, BuildDir: "/c/kbuild/work-1.0", At: at},
		{Key: "bbbb", Extra: []string{"gcov"}, Objects: 900, Seconds: 500, BuildDir: "/c/kbuild/work-2.0", At: at.Add(time.Minute)},
	}
	var out bytes.Buffer
	if err := Summary(&out, built, 2000); err != nil {
		t.Errorf("1780 objects against a budget of 2000: %v", err)
	}
	for _, want := range []string{"kernels built by this run (2)", "aaaa    880 objects", "work-2.0  gcov", "total: 1780 objects compiled in 15.0 min of make (budget: 2000 objects)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	if err := Summary(&out, built, 1000); err == nil || !strings.Contains(err.Error(), "1780 kernel objects, over make test's budget of 1000") {
		t.Errorf("over the budget: %v, want an error naming both numbers", err)
	}
}

func TestLedger(t *testing.T) {
	cache := t.TempDir()
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for key, at := range map[string]time.Time{"old": start.Add(-time.Hour), "second": start.Add(2 * time.Minute), "first": start.Add(time.Minute)} {
		dir := filepath.Join(cache, "kbuild", key)
		os.MkdirAll(dir, 0o755)
		data, _ := json.Marshal(kbuild.Meta{Key: key, BuiltAt: at, ObjectsCompiled: 10})
		if err := os.WriteFile(filepath.Join(dir, "bespoke-build.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(cache, "kbuild", "work-x.0"), 0o755) // a work dir has no metadata
	got, err := Ledger(cache, start)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, b := range got {
		keys = append(keys, b.Key)
	}
	if !slices.Equal(keys, []string{"first", "second"}) {
		t.Errorf("Ledger since the start: %v, want [first second] (oldest first, none from before)", keys)
	}
}
