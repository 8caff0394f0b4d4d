package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/features"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// kernelOfImage writes an image directory as CheckKernelOf reads it: its
// image.json, a kernel, its config with options =y, and, when removed is
// not empty, a report whose shaken syscall table removed those.
func kernelOfImage(t *testing.T, name, target, march string, options, removed []string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name+".image")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	img := &vm.Image{Name: name, Target: target, Kernel: KernelFile, Disk: "root.erofs", March: march}
	if err := img.Write(dir); err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	for _, o := range options {
		cfg.WriteString("CONFIG_" + o + "=y\n")
	}
	for file, data := range map[string]string{KernelFile: "kernel", ConfigFile: cfg.String()} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(removed) > 0 {
		if err := writeJSON(filepath.Join(dir, ReportFile), &Report{Syscalls: &SyscallShake{Removed: removed}}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestCheckKernelOf: bench --kernel-of accepts another image's kernel that
// has what the image's program needs, and names what it lacks otherwise.
func TestCheckKernelOf(t *testing.T) {
	sp := &spec.Spec{Name: "app", Target: vm.TargetMicrovm, Root: spec.RootErofs, Seccomp: spec.SeccompOff}
	m := &manifest.Manifest{Syscalls: []manifest.Syscall{{Name: "read"}, {Name: "epoll_wait"}, {Name: "io_uring_setup"}}}
	need, err := rootKconfig(sp)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range features.Required(m) {
		need = append(need, r.Symbol)
	}
	if len(need) < 2 {
		t.Fatalf("the fixture needs 2 options or more, has %v", need)
	}
	dir := kernelOfImage(t, "app", vm.TargetMicrovm, "", need, nil)
	if err := writeJSON(filepath.Join(dir, SpecFile), sp); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile(filepath.Join(dir, ManifestFile)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		other   string
		fixes   *Fixes
		want    string // in the error; "" for none
		wantNot string
	}{
		{name: "same options", other: kernelOfImage(t, "b", vm.TargetMicrovm, "", append(need, "EXTRA"), nil)},
		{name: "one option less", other: kernelOfImage(t, "b", vm.TargetMicrovm, "", need[1:], nil), want: "lacks CONFIG_" + need[0] + ","},
		{name: "a fix's option", other: kernelOfImage(t, "b", vm.TargetMicrovm, "", need, nil),
			fixes: &Fixes{Enable: []Fix{{What: "NET_FIXED"}}}, want: "lacks CONFIG_NET_FIXED, which the image in"},
		{name: "another target", other: kernelOfImage(t, "b", vm.TargetPC, "", need, nil), want: "configured for qemu-pc, and this image targets qemu-microvm: compare kernels of one target"},
		{name: "another march", other: kernelOfImage(t, "b", vm.TargetMicrovm, "x86-64-v3", need, nil), want: "compiled for -march x86-64-v3 and the image in " + dir + " for the default -march"},
		{name: "a removed syscall", other: kernelOfImage(t, "b", vm.TargetMicrovm, "", need, []string{"io_uring_setup", "kexec_load"}),
			want: "syscall io_uring_setup, which", wantNot: "kexec_load"},
		{name: "a kept syscall", other: kernelOfImage(t, "b", vm.TargetMicrovm, "", need, []string{"kexec_load"}),
			fixes: &Fixes{Keep: []Fix{{What: "kexec_load"}}}, want: "lacks syscall kexec_load, which the image in " + dir + " needs: compare kernels whose syscall tables keep"},
		{name: "no image", other: filepath.Join(t.TempDir(), "none"), want: "reading the kernel of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(dir, FixesFile))
			if tc.fixes != nil {
				if err := writeJSON(filepath.Join(dir, FixesFile), tc.fixes); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckKernelOf(dir, tc.other)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckKernelOf: %v", err)
			case tc.want == "":
			case err == nil:
				t.Fatalf("CheckKernelOf: no error, want one with %q", tc.want)
			case !strings.Contains(err.Error(), tc.want) || tc.wantNot != "" && strings.Contains(err.Error(), tc.wantNot):
				t.Fatalf("CheckKernelOf: %v\nwant %q in it (and not %q)", err, tc.want, tc.wantNot)
			}
		})
	}
}
