package image_test

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/kbuild"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/bespoke-os/bespoke/internal/verify"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// TestRedisPGO builds the redis example with --optimize pgo and a shaken
// syscall table: a profiling kernel runs the workload, its profile is
// applied (objects differ from the -O2 build's), and the profile-guided
// kernel must boot and pass the workload (the build's smoke boot) and
// bespoke verify; a removed syscall returns ENOSYS in the guest.
//
// It builds two more kernels (the profiling one and the profile-guided
// one, about 20 minutes on 2 cores; the shaken -O2 one continues the
// redis kernel's build dir).
func TestRedisPGO(t *testing.T) {
	testenv.Command(t, "qemu-system-x86_64")
	testenv.Command(t, "redis-server")
	testenv.File(t, ksrc.DefaultSource)
	redisImage(t) // its -O2 kernel is this build's starting point: a cache hit
	sp, err := spec.Load("../../examples/redis/bespoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sp.Kernel.Opt, sp.Kernel.ShakeSyscalls = spec.OptPGO, true
	out := filepath.Join(t.TempDir(), "redis-pgo.image")
	rep, err := image.Build(context.Background(), image.Options{Spec: sp, Out: out, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	p := rep.PGO
	if p == nil || p.Hot == 0 || p.Cold == 0 || p.Executed == 0 {
		t.Fatalf("pgo report %+v: want hot and cold translation units and functions that ran", p)
	}
	if rep.Workload == nil || rep.Workload.ExitCode != 0 {
		t.Fatalf("the workload against the profile-guided kernel: %+v", rep.Workload)
	}
	// The profile was applied: bespoke-cc compiled the hot units with it
	// and the cold ones for size, and the kernel differs from the -O2 one.
	log, err := os.ReadFile(filepath.Join(out, image.CCLogFile))
	if err != nil {
		t.Fatal(err)
	}
	hot, cold := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(log))
	for sc.Scan() {
		switch {
		case strings.HasPrefix(sc.Text(), "hot "):
			hot++
		case strings.HasPrefix(sc.Text(), "cold "):
			cold++
		}
	}
	if hot == 0 || cold == 0 {
		t.Errorf("bespoke-cc compiled %d units with the profile and %d for size; want some of each (log %s)", hot, cold, image.CCLogFile)
	}
	o2, err := os.ReadFile(filepath.Join(out, image.O2VmlinuxFile))
	if err != nil {
		t.Fatal(err)
	}
	opt, err := os.ReadFile(filepath.Join(out, image.VmlinuxFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(o2, opt) || p.Optimized.Text == p.O2.Text {
		t.Errorf("the profile-guided vmlinux is the -O2 one (.text %d and %d bytes)", p.Optimized.Text, p.O2.Text)
	}
	differ, same := compareObjects(t, out, log)
	if differ["hot"] == 0 || differ["cold"] == 0 || differ["hot"] < same["hot"] {
		t.Errorf("objects whose code differs from the -O2 build's: %v, the same: %v; want most hot ones and some cold ones to differ", differ, same)
	}
	res, err := verify.Run(context.Background(), verify.Options{ImageDir: out, Progress: testWriter{t}})
	if err != nil {
		t.Fatalf("verify of the profile-guided image: %v", err)
	}
	t.Logf("pgo: %d hot, %d cold units (cc log: %d hot, %d cold; code differs from -O2 in %v, same in %v); .text %d -> %d, bzImage %d -> %d; %s",
		p.Hot, p.Cold, hot, cold, differ, same, p.O2.Text, p.Optimized.Text, p.O2.BzImage, p.Optimized.BzImage, res.Summary())
	checkShaken(t, out, rep)
}

// checkShaken asserts that a shaken image's kernel returns ENOSYS for a
// syscall it removed, one that Linux always implements (kernel/sys.c,
// kernel/sched), and not for one it kept.
func checkShaken(t *testing.T, dir string, rep *image.Report) {
	t.Helper()
	sh := rep.Syscalls
	if sh == nil || len(sh.Removed) == 0 || sh.Kept == 0 {
		t.Fatalf("syscalls: %+v, want some removed and some kept", sh)
	}
	probe := -1
	for _, name := range []string{"sysinfo", "times", "getpriority", "sched_getscheduler"} {
		if i := slices.Index(sh.Removed, name); i >= 0 {
			probe = sh.RemovedNrs[i]
			break
		}
	}
	if probe < 0 {
		t.Fatalf("none of sysinfo, times, getpriority, sched_getscheduler removed (removed: %v)", sh.Removed)
	}
	const getpid = 39
	var console bytes.Buffer
	res, err := vm.Run(context.Background(), vm.Config{ImageDir: dir, Console: &console, Timeout: 3 * time.Minute,
		Params:  []string{fmt.Sprintf("%s=%d,%d", protocol.ParamProbeSyscalls, probe, getpid)},
		OnReady: func(context.Context, map[int]int) error { return nil }})
	if err != nil || !res.Stopped {
		t.Fatalf("boot with probes: %+v, %v; console:\n%s", res, err, console.String())
	}
	for _, want := range []string{fmt.Sprintf("%s%d ENOSYS", protocol.ProbeMarker, probe), fmt.Sprintf("%s%d ok", protocol.ProbeMarker, getpid)} {
		if !strings.Contains(console.String(), want) {
			t.Errorf("console lacks %q:\n%s", want, console.String())
		}
	}
	t.Logf("syscalls: %d of %d removed, %d kept; syscall %d returns ENOSYS in the guest", len(sh.Removed), sh.Table, sh.Kept, probe)
}

// compareObjects compares the .text of each object bespoke-cc compiled
// (its log) in the profile-guided build dir with the same object in the
// -O2 build's, and counts those that differ and those that do not, by
// decision (hot, cold).
func compareObjects(t *testing.T, dir string, ccLog []byte) (differ, same map[string]int) {
	t.Helper()
	buildDir := func(meta string) string {
		var m kbuild.Meta
		data, err := os.ReadFile(filepath.Join(dir, meta))
		if err == nil {
			err = json.Unmarshal(data, &m)
		}
		if err != nil || m.BuildDir == "" {
			t.Fatalf("%s: build dir %q, %v", meta, m.BuildDir, err)
		}
		return m.BuildDir
	}
	o2Dir, pgoDir := buildDir(image.O2MetaFile), buildDir(image.KernelMeta)
	differ, same = map[string]int{}, map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(ccLog))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || (f[0] != "hot" && f[0] != "cold") || !strings.HasSuffix(f[1], ".o") {
			continue
		}
		a, errA := objectText(filepath.Join(o2Dir, f[1]))
		b, errB := objectText(filepath.Join(pgoDir, f[1]))
		if errA != nil || errB != nil {
			continue // not linked into this build's objects (e.g. a host tool)
		}
		if bytes.Equal(a, b) {
			same[f[0]]++
		} else {
			differ[f[0]]++
		}
	}
	return differ, same
}

// objectText returns the contents of an object file's .text sections.
func objectText(path string) ([]byte, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var text []byte
	for _, s := range f.Sections {
		if strings.HasPrefix(s.Name, ".text") && s.Type == elf.SHT_PROGBITS {
			b, err := s.Data()
			if err != nil {
				return nil, err
			}
			text = append(text, b...)
		}
	}
	return text, nil
}
