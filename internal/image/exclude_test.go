package image

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/initramfs"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/spec"
)

func TestExclusion(t *testing.T) {
	m := &manifest.Manifest{Excluded: []manifest.Excluded{{Path: "/etc/ssl/private", Reason: "TLS private keys"}}}
	sp := &spec.Spec{Exclude: []string{"/usr/share/doc"}}
	for _, tc := range []struct{ path, want string }{
		{"/etc/ssl/private/app.pem", "TLS private keys, excluded by the trace"},
		{"/usr/share/doc/redis/README", "the spec's exclude"},
		{"/home/ann/.ssh/id_ed25519", "SSH keys"}, // never traced: recognized now
		{"/etc/app.conf", ""},
	} {
		got := Exclusion(m, sp, tc.path)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("Exclusion(%s) = %q, want %q", tc.path, got, tc.want)
		}
	}
	// A link to a secret brings the secret: refused too.
	dir := t.TempDir()
	key := filepath.Join(dir, "server.key")
	link := filepath.Join(dir, "cert-link")
	if err := os.WriteFile(key, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(key, link); err != nil {
		t.Fatal(err)
	}
	if got := Exclusion(nil, nil, link); !strings.Contains(got, "private key") {
		t.Errorf("Exclusion(link to a .key) = %q, want the key's reason", got)
	}
}

// TestAmendRefusesExcluded: a fix that names an excluded path is refused
// before anything is written, and the image is left as it was.
func TestAmendRefusesExcluded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app.image")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rep := &Report{Initramfs: &initramfs.Report{Format: initramfs.FormatErofs}}
	if err := writeJSON(filepath.Join(dir, ReportFile), rep); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(filepath.Join(dir, SpecFile), &spec.Spec{Name: "app", Exclude: []string{"/usr/share/doc"}}); err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{Excluded: []manifest.Excluded{{Path: "/etc/shadow", Reason: "password hashes"}}}
	if err := m.WriteFile(filepath.Join(dir, ManifestFile)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, ReportFile))
	for _, p := range []string{"/etc/shadow", "/usr/share/doc/x"} {
		err := Amend(context.Background(), AmendOptions{Dir: dir, CacheDir: t.TempDir(), Fixes: Fixes{Include: []Fix{{What: p}}}})
		if err == nil || !strings.Contains(err.Error(), "not adding "+p) {
			t.Errorf("Amend with %s: %v, want a refusal naming it", p, err)
		}
	}
	after, _ := os.ReadFile(filepath.Join(dir, ReportFile))
	if string(before) != string(after) {
		t.Errorf("report.json changed")
	}
	if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 1 {
		t.Errorf("left beside the image: %v", ents)
	}
}

// TestDropPGO: a profile-guided image whose kernel verify --fix rebuilt
// (with -O2) no longer claims a profile, nor keeps the -O2 twin bench
// would compare it with.
func TestDropPGO(t *testing.T) {
	stage := t.TempDir()
	for _, f := range []string{KernelFile, O2KernelFile, O2VmlinuxFile, O2MetaFile, ProfileFile} {
		if err := os.WriteFile(filepath.Join(stage, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sp := &spec.Spec{Name: "app", Kernel: spec.Kernel{Opt: spec.OptPGO}}
	rep := &Report{PGO: &PGO{}}
	if err := dropPGO(stage, sp, rep); err != nil {
		t.Fatal(err)
	}
	if rep.PGO != nil {
		t.Error("report still has pgo")
	}
	got, err := ReadSpec(stage)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kernel.Opt != spec.OptO2 {
		t.Errorf("spec.json kernel.opt = %q, want %q", got.Kernel.Opt, spec.OptO2)
	}
	ents, _ := os.ReadDir(stage)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != KernelFile+" "+SpecFile {
		t.Errorf("staged files %v, want only %s and %s", names, KernelFile, SpecFile)
	}
}
