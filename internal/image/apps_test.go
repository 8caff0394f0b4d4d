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

// apps are the example applications with the command each needs on the
// host. The full tier builds the first ones; BESPOKE_E2E_ALL=1 (make
// e2e-all) builds all six.
var apps = []struct {
	name  string
	tools []string
	all   bool // only with BESPOKE_E2E_ALL
}{
	{"nginx", []string{"nginx", "wrk"}, false},
	{"postgresql", []string{"/usr/lib/postgresql/15/bin/postgres", "pgbench"}, false},
	{"memcached", []string{"memcached", "memcaslap"}, true},
	{"apache2", []string{"apache2", "ab"}, true},
	{"mariadb", []string{"mariadbd", "sysbench"}, true},
}

// TestAppImages builds each example into an image and checks, end to end:
// the workload passed against the image with zero errors (each example's
// workload fails on a client error), as it did on the host while tracing;
// the program shut down cleanly (exit 0 after its stop signal); and
// bespoke verify passes.
func TestAppImages(t *testing.T) {
	testenv.Command(t, "qemu-system-x86_64")
	testenv.File(t, ksrc.DefaultSource)
	for _, app := range apps {
		t.Run(app.name, func(t *testing.T) {
			if app.all {
				testenv.E2EAll(t, "one of the six")
			}
			for _, tool := range app.tools {
				testenv.Command(t, tool)
			}
			sp, err := spec.Load(filepath.Join("../../examples", app.name, spec.FileName))
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), app.name+".image")
			rep, err := image.Build(context.Background(), image.Options{Spec: sp, Out: out, Progress: testWriter{t}})
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
