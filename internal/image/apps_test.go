package image_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/bespoke-os/bespoke/internal/verify"
)

// example is an example application with the commands it needs on the
// host.
type example struct {
	name  string
	tools []string
}

// apps are the example applications beside redis.
var apps = []example{
	{"nginx", []string{"nginx", "wrk"}},
	{"postgresql", []string{"/usr/lib/postgresql/15/bin/postgres", "pgbench"}},
	{"memcached", []string{"memcached", "memcaslap"}},
	{"apache2", []string{"apache2", "ab"}},
	{"mariadb", []string{"mariadbd", "sysbench"}},
}

// TestAppImages builds each example into an image and checks, end to end:
// the workload passed against the image with zero errors (each example's
// workload fails on a client error), as it did on the host while tracing;
// the program shut down cleanly (exit 0 after its stop signal); and
// bespoke verify passes. Under make test every image reuses the shared
// test kernel (their own kernels would be five more builds of 6-11
// minutes each); make e2e-all builds each one's own.
func TestAppImages(t *testing.T) {
	testenv.Command(t, "qemu-system-x86_64")
	testenv.File(t, ksrc.DefaultSource)
	for _, app := range apps {
		t.Run(app.name, func(t *testing.T) {
			dir, rep := appImage(t, app.name)
			checkApp(t, dir, rep)
		})
	}
}

// appImages are the example images the package's tests built, kept for
// the other tests of the run (TestStateVolume).
var appImages struct {
	sync.Mutex
	built map[string]appBuilt
}

type appBuilt struct {
	dir string
	rep *image.Report
}

// appImage returns the image of the example app, building it the first
// time (with the shared kernel under make test, see sharedKernelFrom).
func appImage(t *testing.T, name string) (string, *image.Report) {
	t.Helper()
	appImages.Lock()
	defer appImages.Unlock()
	if a, ok := appImages.built[name]; ok {
		return a.dir, a.rep
	}
	i := slices.IndexFunc(apps, func(a example) bool { return a.name == name })
	if i < 0 {
		t.Fatalf("no example %s", name)
	}
	for _, tool := range apps[i].tools {
		testenv.Command(t, tool)
	}
	kernel := sharedKernelFrom(t)
	sp, err := spec.Load(filepath.Join("../../examples", name, spec.FileName))
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp("", "bespoke-e2e-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, name+".image")
	rep, err := image.Build(context.Background(), image.Options{Spec: sp, Out: out, KernelFrom: kernel, Progress: testWriter{t}})
	if err != nil {
		os.RemoveAll(tmp)
		t.Fatal(err)
	}
	if appImages.built == nil {
		appImages.built = map[string]appBuilt{}
	}
	appImages.built[name] = appBuilt{out, rep}
	return out, rep
}

func checkApp(t *testing.T, dir string, rep *image.Report) {
	t.Helper()
	if rep.Workload == nil || rep.Workload.ExitCode != 0 {
		t.Fatalf("the workload against the image did not pass: %+v", rep.Workload)
	}
	if rep.Boot == nil || rep.Boot.StopExitCode == nil || *rep.Boot.StopExitCode != 0 {
		t.Errorf("the program did not shut down cleanly after its stop signal: %+v", rep.Boot)
	}
	// Fidelity: the same workload passed on the host while tracing (the
	// build fails otherwise), with the same client and checks.
	m, err := manifest.ReadFile(filepath.Join(dir, image.ManifestFile))
	if err != nil || m.Workload == nil || m.Workload.ExitCode != 0 {
		t.Errorf("the host trace's workload: %+v, %v; want exit 0", m.Workload, err)
	}
	res, err := verify.Run(context.Background(), verify.Options{ImageDir: dir, Progress: testWriter{t}})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !res.Passed || res.Rounds[0].ExitCode != 0 {
		t.Errorf("verify: %s", res.Summary())
	}
	// The program ran under a seccomp filter from its trace (log, the
	// default with ports).
	if rep.Seccomp == nil || rep.Seccomp.Mode != spec.SeccompLog || len(rep.Seccomp.Allow) < 20 {
		t.Errorf("the image's seccomp filter: %+v, want log mode with the trace's syscalls", rep.Seccomp)
	}
	// What the program made outside its list ran (log) and is reported:
	// the trace is a sample of what a program does.
	for _, e := range rep.Boot.Seccomp {
		if e.Action != "allowed" {
			t.Errorf("the smoke boot's seccomp filter %s", e)
		}
		t.Logf("smoke boot: seccomp: %s", e)
	}
	for _, f := range res.Rounds[0].Findings {
		t.Logf("verify found: %s", f)
	}
	t.Logf("%s: kernel %d B (%d =y), initramfs %d B (%d files), ready %.2fs, workload %.1fs",
		rep.Name, rep.KernelBytes, rep.KernelSymbols, rep.InitramfsBytes, len(rep.Initramfs.Files), rep.Boot.ReadyHost, rep.Workload.Seconds)
}
