package image

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/vm"
)

func TestSeccompPolicy(t *testing.T) {
	m := &manifest.Manifest{Syscalls: []manifest.Syscall{{Name: "epoll_wait", Nr: 232}, {Name: "accept4", Nr: 288}, {Name: "syscall_999", Nr: 999}}}
	server := &spec.Spec{Ports: []spec.Port{{Port: 80, Proto: "tcp"}}, SeccompAllow: []string{"clone3"}}
	sc, err := SeccompPolicy(server, m)
	if err != nil {
		t.Fatal(err)
	}
	if sc == nil || sc.Mode != spec.SeccompLog {
		t.Fatalf("a server's default policy %+v, want log", sc)
	}
	for _, want := range []string{"epoll_wait", "accept4", "clone3", "rt_sigreturn", "execve", "exit_group"} {
		if !slices.Contains(sc.Allow, want) {
			t.Errorf("allowlist %v lacks %s", sc.Allow, want)
		}
	}
	if slices.Contains(sc.Allow, "syscall_999") || slices.Contains(sc.Allow, "io_uring_setup") || !slices.IsSorted(sc.Allow) {
		t.Errorf("allowlist %v: want the trace's named syscalls only, sorted", sc.Allow)
	}
	if _, err := sc.Param(sc.Mode); err != nil {
		t.Errorf("the allowlist does not encode: %v", err)
	}
	if sc, err := SeccompPolicy(&spec.Spec{}, m); sc != nil || err != nil {
		t.Errorf("a program without ports: %+v, %v; want no filter (off by default)", sc, err)
	}
	if sc, err := SeccompPolicy(&spec.Spec{Seccomp: spec.SeccompEnforce}, m); err != nil || sc == nil || sc.Mode != spec.SeccompEnforce {
		t.Errorf("seccomp: enforce: %+v, %v", sc, err)
	}
	if _, err := SeccompPolicy(&spec.Spec{Seccomp: spec.SeccompLog, SeccompAllow: []string{"frobnicate"}}, m); err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Errorf("an unknown name in seccomp_allow: %v, want an error naming it", err)
	}
}

// TestAmendSeccomp: a seccomp fix adds the syscall to the image's
// allowlist (image.json) and records it, and leaves the rest alone.
func TestAmendSeccomp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app.image")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	img := &vm.Image{Name: "app", Target: vm.TargetMicrovm, Kernel: KernelFile, Disk: RootFile,
		Seccomp: &vm.Seccomp{Mode: spec.SeccompEnforce, Allow: []string{"read", "write"}}}
	if err := img.Write(dir); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(filepath.Join(dir, ReportFile), &Report{Seccomp: img.Seccomp}); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(filepath.Join(dir, SpecFile), &spec.Spec{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	fix := Fixes{Seccomp: []Fix{{What: "epoll_wait", Why: "seccomp-denial"}}}
	if err := Amend(context.Background(), AmendOptions{Dir: dir, CacheDir: t.TempDir(), Fixes: fix}); err != nil {
		t.Fatal(err)
	}
	got, err := vm.LoadImage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"epoll_wait", "read", "write"}; !slices.Equal(got.Seccomp.Allow, want) || got.Seccomp.Mode != spec.SeccompEnforce {
		t.Errorf("allowlist after the fix %+v, want %v in enforce mode", got.Seccomp, want)
	}
	rep, err := ReadReport(dir)
	if err != nil || !slices.Contains(rep.Seccomp.Allow, "epoll_wait") {
		t.Errorf("report.json's seccomp %+v, %v: want the fix", rep.Seccomp, err)
	}
	fixes, err := ReadFixes(dir)
	if err != nil || len(fixes.Seccomp) != 1 || fixes.Seccomp[0].What != "epoll_wait" {
		t.Errorf("fixes.json %+v, %v: want the seccomp fix", fixes, err)
	}
	// A name that is no syscall is refused, and the image stays as it was.
	before, _ := os.ReadFile(filepath.Join(dir, vm.ImageFile))
	err = Amend(context.Background(), AmendOptions{Dir: dir, CacheDir: t.TempDir(), Fixes: Fixes{Seccomp: []Fix{{What: "frobnicate"}}}})
	if err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Errorf("a fix that is no syscall: %v, want an error naming it", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, vm.ImageFile)); string(after) != string(before) {
		t.Errorf("image.json changed by a refused fix")
	}
}
