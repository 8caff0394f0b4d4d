package image_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/bespoke-os/bespoke/internal/verify"
)

// apps are the example applications beside redis, with the commands each
// needs on the host.
var apps = []struct {
	name  string
	tools []string
}{
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
			for _, tool := range app.tools {
				testenv.Command(t, tool)
			}
			kernel := sharedKernelFrom(t)
			sp, err := spec.Load(filepath.Join("../../examples", app.name, spec.FileName))
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), app.name+".image")
			rep, err := image.Build(context.Background(), image.Options{Spec: sp, Out: out, KernelFrom: kernel, Progress: testWriter{t}})
			if err != nil {
				t.Fatal(err)
			}
			checkApp(t, out, rep)
		})
	}
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
	t.Logf("%s: kernel %d B (%d =y), initramfs %d B (%d files), ready %.2fs, workload %.1fs",
		rep.Name, rep.KernelBytes, rep.KernelSymbols, rep.InitramfsBytes, len(rep.Initramfs.Files), rep.Boot.ReadyHost, rep.Workload.Seconds)
}
