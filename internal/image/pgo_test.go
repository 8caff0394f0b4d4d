package image_test

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
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

// TestRedisShakeSyscalls builds the redis example with a shaken syscall
// table: its kernel continues the shared kernel's build dir (only the
// table's object recompiles), the image passes its workload, and a
// removed syscall returns ENOSYS in the guest while a kept one works.
func TestRedisShakeSyscalls(t *testing.T) {
	out, rep := redisVariant(t, vm.TargetMicrovm, "the shared qemu-microvm test kernel with a shaken syscall table",
		func(sp *spec.Spec) { sp.Kernel.ShakeSyscalls = true })
	if rep.Workload == nil || rep.Workload.ExitCode != 0 {
		t.Fatalf("the workload against the shaken kernel: %+v", rep.Workload)
	}
	checkShaken(t, out, rep)
}

// TestRedisPGO builds the redis example with --optimize pgo and a shaken
// syscall table: a profiling kernel runs the workload, its profile is
// applied (objects differ from the -O2 build's), and the profile-guided
// kernel must boot and pass the workload (the build's smoke boot) and
// bespoke verify; a removed syscall returns ENOSYS in the guest.
//
// It builds two kernels from scratch (the profiling one and the
// profile-guided one: every object's flags differ from the -O2 build's),
// about 14 minutes on 2 cores: more than make test can spend on one
// feature (README, Testing). make e2e-all runs it.
func TestRedisPGO(t *testing.T) {
	testenv.E2EAll(t, "redis's profile-guided kernel (two kernel builds from scratch)")
	testenv.Command(t, "qemu-system-x86_64")
	testenv.Command(t, "redis-server")
	testenv.File(t, ksrc.DefaultSource)
	redisImage(t) // its -O2 kernel, the shared one, is this build's starting point: a cache hit
	sp, err := redisSpec(vm.TargetMicrovm)
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
	if bytes.Equal(o2, opt) || p.Optimized.Code == p.O2.Code {
		t.Errorf("the profile-guided vmlinux is the -O2 one (code %d and %d bytes)", p.Optimized.Code, p.O2.Code)
	}
	// GCC used the counts, not only -fprofile-use's flags: the blocks that
	// never ran moved out of the hot functions into .cold parts (a profile
	// without an object summary left 1 of them, the -O2 kernel has 5).
	if o2c, optc := coldParts(t, filepath.Join(out, image.O2VmlinuxFile)), coldParts(t, filepath.Join(out, image.VmlinuxFile)); optc < 100 || optc < 10*o2c {
		t.Errorf("the profile-guided vmlinux has %d .cold parts, the -O2 one %d: was the profile used?", optc, o2c)
	}
	differ, same := compareObjects(t, out, log)
	if differ["hot"] == 0 || differ["cold"] == 0 || differ["hot"] < same["hot"] {
		t.Errorf("objects whose code differs from the -O2 build's: %v, the same: %v; want most hot ones and some cold ones to differ", differ, same)
	}
	res, err := verify.Run(context.Background(), verify.Options{ImageDir: out, Progress: testWriter{t}})
	if err != nil {
		t.Fatalf("verify of the profile-guided image: %v", err)
	}
	t.Logf("pgo: %d hot, %d cold units (cc log: %d hot, %d cold; code differs from -O2 in %v, same in %v); code %d -> %d, bzImage %d -> %d; %s",
		p.Hot, p.Cold, hot, cold, differ, same, p.O2.Code, p.Optimized.Code, p.O2.BzImage, p.Optimized.BzImage, res.Summary())
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
	// The guest init's own syscalls stay: it set the clock and put the
	// seccomp filter on the program (both failed with ENOSYS when
	// clock_settime and seccomp were missing from guestinit.Syscalls).
	if w := protocol.MarkerPrefix + "warning: "; strings.Contains(console.String(), w) {
		t.Errorf("the guest init warned on the shaken kernel:\n%s", console.String())
	}
	if !strings.Contains(console.String(), "init: clock set from the host's") {
		t.Errorf("the guest init did not set the clock on the shaken kernel:\n%s", console.String())
	}
	t.Logf("syscalls: %d of %d removed, %d kept; syscall %d returns ENOSYS in the guest", len(sh.Removed), sh.Table, sh.Kept, probe)
}

// compareObjects recompiles a sample of the objects bespoke-cc compiled
// (its log) as the -O2 build does, with the command Kbuild saved in the
// profile-guided build dir (.X.o.cmd, objtool included) run with gcc
// instead of bespoke-cc, and compares their .text with the profile-guided
// objects'; it counts those that differ and those that do not, by decision
// (hot, cold). The -O2 kernel's own build dir is no reference: with a warm
// cache it is a cache hit whose dir later builds may have reused.
func compareObjects(t *testing.T, dir string, ccLog []byte) (differ, same map[string]int) {
	t.Helper()
	var m kbuild.Meta
	data, err := os.ReadFile(filepath.Join(dir, image.KernelMeta))
	if err == nil {
		err = json.Unmarshal(data, &m)
	}
	if err != nil || m.BuildDir == "" {
		t.Fatalf("%s: build dir %q, %v", image.KernelMeta, m.BuildDir, err)
	}
	objs := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(ccLog))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && (f[0] == "hot" || f[0] == "cold") && strings.HasSuffix(f[1], ".o") {
			objs[f[0]] = append(objs[f[0]], f[1])
		}
	}
	const sample = 20
	tmp := t.TempDir()
	differ, same = map[string]int{}, map[string]int{}
	for _, kind := range []string{"hot", "cold"} {
		list := objs[kind]
		step := max(1, len(list)/sample)
		for i := 0; i < len(list); i += step {
			obj := list[i]
			o2, err := recompileO2(m.BuildDir, obj, tmp)
			if err != nil {
				t.Errorf("recompiling %s as the -O2 build does: %v", obj, err)
				continue
			}
			a, errA := objectText(o2)
			b, errB := objectText(filepath.Join(m.BuildDir, obj))
			if errA != nil || errB != nil {
				t.Errorf("%s: .text: %v, %v", obj, errA, errB)
				continue
			}
			if bytes.Equal(a, b) {
				same[kind]++
			} else {
				differ[kind]++
			}
		}
	}
	return differ, same
}

// recompileO2 runs the command Kbuild saved for obj in buildDir (its
// .cmd file) with gcc as the compiler and the object and its dependency
// file in tmp, and returns the new object's path.
func recompileO2(buildDir, obj, tmp string) (string, error) {
	cmdFile := filepath.Join(buildDir, filepath.Dir(obj), "."+filepath.Base(obj)+".cmd")
	data, err := os.ReadFile(cmdFile)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	_, cmd, ok := strings.Cut(line, " := ")
	if !ok {
		return "", fmt.Errorf("%s: no saved command", cmdFile)
	}
	cc, rest, _ := strings.Cut(strings.TrimSpace(cmd), " ")
	if !strings.Contains(filepath.Base(cc), "bespoke-cc") {
		return "", fmt.Errorf("%s: compiled by %s, not bespoke-cc", cmdFile, cc)
	}
	out := filepath.Join(tmp, strings.ReplaceAll(obj, "/", "__"))
	dep := filepath.Join(filepath.Dir(obj), "."+filepath.Base(obj)+".d")
	rest = strings.ReplaceAll(rest, dep, out+".d")
	rest = strings.ReplaceAll(rest, obj, out)
	c := exec.Command("sh", "-c", "gcc "+rest)
	c.Dir = buildDir
	if b, err := c.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, b)
	}
	return out, nil
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

// coldParts counts the function symbols of a vmlinux that GCC split off as
// never executed ("NAME.cold").
func coldParts(t *testing.T, vmlinux string) int {
	t.Helper()
	f, err := elf.Open(vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && strings.HasSuffix(s.Name, ".cold") {
			n++
		}
	}
	return n
}
