package costmodel

import (
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const snapA = "kernel_insns\t1000\nuser_insns\t500\nkernel_tbs\t200\nuser_tbs\t90\nl1i_accesses\t300\nl1i_misses\t30\nfirst_user_insns\t700\n" +
	"tb\tffffffff81000000\t5\t10\ntb\tffffffff81000040\t3\t4\n"
const snapB = "kernel_insns\t1600\nuser_insns\t900\nkernel_tbs\t300\nuser_tbs\t150\nl1i_accesses\t400\nl1i_misses\t45\nfirst_user_insns\t700\n" +
	"tb\tffffffff81000000\t5\t30\ntb\tffffffff81000040\t3\t4\ntb\tffffffff81000080\t7\t2\n"

func write(t *testing.T, name, data string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSnapshotSub(t *testing.T) {
	a, err := ReadSnapshot(write(t, "a.tsv", snapA))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ReadSnapshot(write(t, "b.tsv", snapB))
	if err != nil {
		t.Fatal(err)
	}
	d := b.Sub(a)
	want := &Snapshot{
		Counters: Counters{KernelInsns: 600, UserInsns: 400, KernelTBs: 100, UserTBs: 60, L1iAccesses: 100, L1iMisses: 15, FirstUser: 700},
		Blocks:   []Block{{0xffffffff81000000, 5, 20}, {0xffffffff81000080, 7, 2}},
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("b - a (-want +got):\n%s", diff)
	}
	if a.Insns() != 1500 {
		t.Errorf("Insns() = %d", a.Insns())
	}
}

func TestReadSnapshotBad(t *testing.T) {
	for _, bad := range []string{"", "kernel_insns\tx\n", "tb\tzz\t1\t1\n" + snapA, "bogus\t1\n" + snapA, "kernel_insns\t1\n"} {
		if _, err := ReadSnapshot(write(t, "bad.tsv", bad)); err == nil {
			t.Errorf("ReadSnapshot(%q) accepted", bad)
		}
	}
}

func TestSymbols(t *testing.T) {
	// ReadSymbols of a real vmlinux: the full tier (image.TestCostModelRepeatable).
	syms := &Symbols{funcs: []elf.Symbol{{Name: "a", Value: 0x1000, Size: 0x40}, {Name: "b", Value: 0x1040, Size: 0x10}, {Name: "c", Value: 0x2000, Size: 8}}}
	for addr, want := range map[uint64]string{0x1000: "a", 0x103f: "a", 0x1040: "b", 0x1050: "", 0x2004: "c", 0x10: "", 0x3000: ""} {
		if got := syms.Name(addr); got != want {
			t.Errorf("Name(%#x) = %q, want %q", addr, got, want)
		}
	}
	sums := map[string]float64{}
	syms.Sum(sums, []Block{{0x1000, 4, 10}, {0x1010, 2, 5}, {0x1044, 3, 2}, {0x1050, 3, 1}}, 2)
	want := []FuncCost{{"a", 25}, {"b", 3}, {"?", 1.5}}
	if diff := cmp.Diff(want, Top(sums, 5)); diff != "" {
		t.Errorf("Top (-want +got):\n%s", diff)
	}
	if top := Top(sums, 1); len(top) != 1 || top[0].Name != "a" {
		t.Errorf("Top(1) = %v", top)
	}
}

func TestFindPlugin(t *testing.T) {
	t.Setenv(PluginEnv, "")
	if _, err := FindPlugin(filepath.Join(t.TempDir(), "none.so")); err == nil || !strings.Contains(err.Error(), "make plugin") {
		t.Errorf("a missing plugin: %v, want an error saying how to build it", err)
	}
	p := write(t, PluginFile, "x")
	t.Setenv(PluginEnv, p)
	if got, err := FindPlugin(""); err != nil || got != p {
		t.Errorf("FindPlugin with $%s: %q, %v", PluginEnv, got, err)
	}
}

func TestSessionArg(t *testing.T) {
	s, err := NewSession("/p/bespoke-cost.so")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fi, err := os.Stat(filepath.Join(s.dir, "ctl")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("no control FIFO: %v", err)
	}
	if arg := s.PluginArg(); !strings.HasPrefix(arg, "/p/bespoke-cost.so,ctl="+s.dir+"/ctl,out="+s.dir) {
		t.Errorf("PluginArg() = %q", arg)
	}
}
