package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/features"
	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/initramfs"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// TestBuildFlagConflicts: a flag that would have no effect beside another
// is a usage error naming it (exit 2), before anything is built.
func TestBuildFlagConflicts(t *testing.T) {
	dir := t.TempDir()
	sp := filepath.Join(dir, spec.FileName)
	os.WriteFile(sp, []byte("cmd: /bin/true\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--kernel-from", dir, "--optimize", "size"}, "--optimize configures the kernel build, and --kernel-from"},
		{[]string{"--kernel-from", dir, "--march", "x86-64-v3"}, "--march"},
		{[]string{"--kernel-from", dir, "--shake-syscalls"}, "--shake-syscalls"},
		{[]string{"--kernel-from", dir, "--kernel-dce"}, "--kernel-dce configures"},
		{[]string{"--kernel-dce", "--optimize", "pgo"}, "--kernel-dce builds the kernel with Clang, and --optimize pgo"},
		{[]string{"--kernel-from", dir, "-j", "4"}, "--j configures"},
		{[]string{"--size-report"}, "--size-report reports the variants of a profile-guided kernel"},
		{[]string{"--no-boot", "--accel", "tcg"}, "--accel chooses the accelerator of the smoke boot"},
		{[]string{"--cpus", "0"}, "--cpus 0: want 1 or more"},
		{[]string{"--target", "kvm"}, `unknown target "kvm"`},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"build", "-f", sp, "-o", filepath.Join(dir, "out")}, tc.args...)
		code := Main(context.Background(), args, nil, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("bespoke %q: exit %d, stderr %q; want exit 2 and %q", args, code, stderr.String(), tc.want)
		}
	}
}

// TestFlagsWithoutEffect: run and verify refuse a flag that would do
// nothing, naming it (exit 2), rather than accept and drop it.
func TestFlagsWithoutEffect(t *testing.T) {
	dir := runImageDir(t)
	small := t.TempDir()
	if err := (&vm.Image{Name: "s", Target: vm.TargetMicrovm, Kernel: "bzImage", Disk: "root.erofs", MinMemoryMB: 64}).Write(small); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"verify", dir, "--max-rounds", "2"}, "--max-rounds applies to --fix"},
		{[]string{"verify", dir, "-j", "2"}, "--j applies to --fix"},
		{[]string{"verify", dir, "--fix", "--no-trace"}, "--no-trace skips that boot"},
		{[]string{"run", dir, "--cpus", "0"}, "--cpus 0: want 1 or more"},
		{[]string{"run", dir, "--timeout", "-5s"}, "--timeout -5s: want a positive duration"},
		{[]string{"run", dir, "--timeout", "0s"}, "--timeout 0s: want a positive duration"},
		{[]string{"run", dir, "-n", "--timeout", "1m"}, "--timeout applies to a VM that runs, and -n only prints"},
		{[]string{"run", dir, "-n", "--log", "x.log"}, "--log applies to a VM that runs"},
		{[]string{"run", dir, "--volume-size", "2G"}, "--volume-size applies to a volume -v creates"},
		{[]string{"run", dir, "-v", "state.ext4:/var/lib/x"}, "has an initramfs root, which lives in RAM and mounts no volumes"},
		{[]string{"run", small, "-m", "32M"}, "-m 32M is below the least memory this image passes its workload with (64 MiB"},
		{[]string{"run", small, "-v", "state.ext4:{state}"}, "has no state directory (its spec has no setup)"},
		{[]string{"run", dir, "--seccomp", "strict"}, `--seccomp "strict": want enforce, log or off`},
		{[]string{"bench", dir, "--plugin", "x.so"}, "--plugin applies to the cost model: add --model"},
		{[]string{"bench", dir, "--requests", "10"}, "--requests applies to the cost model: add --model"},
		{[]string{"bench", dir, "--model", "--requests", "0"}, "--requests 0: want the number of requests"},
		{[]string{"bench", dir, "--model", "--requests", "a(b"}, `--requests "a(b": want a number, or a regular expression`},
		{[]string{"bench", dir, "--seccomp", "on"}, `--seccomp "on": want enforce, log or off`},
		{[]string{"bench", dir, "--model", "--accel", "kvm"}, "--model counts what QEMU's TCG translator runs"},
		{[]string{"bench", dir, "--kernel-of", small, "--kernel-of", small + "/"}, "--kernel-of " + small + "/ is given twice"},
		{[]string{"bench", dir, "--kernel-of", dir + "/."}, "--kernel-of " + dir + "/. is the image measured"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), tc.args, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("bespoke %q: exit %d, stderr %q; want exit 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// TestBuildFlagsOverrideSpec: every flag of the spec given beside -f is in
// the image's spec.json, and the build log names the fields the flags set.
// The image reuses a kernel (--kernel-from a directory holding a .config
// with the options the program needs) and is not booted: only the spec is
// under test, and the initramfs is really packed.
func TestBuildFlagsOverrideSpec(t *testing.T) {
	testenv.Root(t)
	dir := t.TempDir()
	specFile := filepath.Join(dir, spec.FileName)
	if err := os.WriteFile(specFile, []byte(`name: fromfile
cmd: /bin/true
env: {A: file, B: file}
ports: [7000]
memory: 256M
`), 0o644); err != nil {
		t.Fatal(err)
	}
	mpath, m := traceTrue(t, dir)
	kernel := fakeKernelImage(t, m, spec.TargetPC)
	extra := filepath.Join(dir, "extra.txt")
	os.WriteFile(extra, []byte("x"), 0o644)

	out := filepath.Join(dir, "out.image")
	args := []string{"build", "-f", specFile, "--manifest", mpath, "--kernel-from", kernel, "--no-boot", "-o", out,
		"--name", "fromflags", "--ready", "tcp:8080", "--workload", "echo {port}", "-p", "9000", "--port", "53/udp",
		"-e", "A=flag", "--user", "nobody", "--workdir", "/srv", "--include", extra, "--exclude", "*.pyc",
		"--target", spec.TargetPC, "--root", spec.RootInitramfs, "--compression", "xz", "--data", spec.DataTraced, "-m", "512M", "--cpus", "2", "--seccomp", spec.SeccompEnforce}
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), args, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("bespoke %q: exit %d\n%s", args, code, stderr.String())
	}
	got, err := image.ReadSpec(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flag      string
		got, want any
	}{
		{"--name", got.Name, "fromflags"},
		{"--ready", got.Ready, spec.Ready{Kind: spec.ReadyTCP, Port: 8080}},
		{"--workload", got.Workload, "echo {port}"},
		{"-p/--port (added to the file's)", fmt.Sprint(got.Ports), "[53/udp 7000/tcp 8080/tcp 9000/tcp]"},
		{"-e (over the file's)", fmt.Sprint(got.Env), "map[A:flag B:file]"},
		{"--user", got.User != nil && got.User.Name == "nobody", true},
		{"--workdir", got.Workdir, "/srv"},
		{"--include", fmt.Sprint(got.Include), fmt.Sprint([]string{extra})},
		{"--exclude", fmt.Sprint(got.Exclude), "[*.pyc]"},
		{"--target", got.Target, spec.TargetPC},
		{"--root", got.Root, spec.RootInitramfs},
		{"--compression", got.Compression, "xz"},
		{"--data", got.Data, spec.DataTraced},
		{"-m", got.MemoryMB, 512},
		{"--cpus", got.CPUs, 2},
		{"--seccomp", got.Seccomp, spec.SeccompEnforce},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: spec.json has %v, want %v", tc.flag, tc.got, tc.want)
		}
	}
	var img vm.Image
	if data, err := os.ReadFile(filepath.Join(out, vm.ImageFile)); err != nil || json.Unmarshal(data, &img) != nil {
		t.Fatalf("%s: %v", vm.ImageFile, err)
	}
	if img.Target != spec.TargetPC || img.MemoryMB != 512 || img.CPUs != 2 {
		t.Errorf("image.json: target %s, memory %d, cpus %d; want %s, 512, 2", img.Target, img.MemoryMB, img.CPUs, spec.TargetPC)
	}
	log, _ := os.ReadFile(filepath.Join(out, image.BuildLogFile))
	want := "with name, ready, workload, ports, env, user, workdir, include, exclude, target, root, compression, data, memory, cpus, seccomp from the command line"
	if !strings.Contains(string(log), want) {
		t.Errorf("build log lacks %q:\n%s", want, log)
	}

	// A kernel configured for another machine is refused, not booted
	// where it has no devices.
	args = []string{"build", "-f", specFile, "--manifest", mpath, "--kernel-from", kernel, "--no-boot", "-o", out}
	stderr.Reset()
	if code := Main(context.Background(), args, nil, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "configured for qemu-pc, and this image targets qemu-microvm") {
		t.Errorf("bespoke %q: exit %d, stderr %q; want the target mismatch named", args, code, stderr.String())
	}
}

// traceTrue traces /bin/true with bespoke trace into dir/manifest.json.
func traceTrue(t *testing.T, dir string) (string, *manifest.Manifest) {
	t.Helper()
	mpath := filepath.Join(dir, "manifest.json")
	if code, _, stderr := runTraceCLI(t, "-o", mpath, "--", "/bin/true"); code != 0 {
		t.Fatalf("bespoke trace /bin/true: exit %d\n%s", code, stderr)
	}
	m, err := manifest.ReadFile(mpath)
	if err != nil {
		t.Fatal(err)
	}
	return mpath, m
}

// fakeKernelImage writes an image directory whose kernel files are empty
// and whose .config enables what the program of m needs, for
// --kernel-from with --no-boot.
func fakeKernelImage(t *testing.T, m *manifest.Manifest, target string) string {
	t.Helper()
	dir := t.TempDir()
	var cfg strings.Builder
	for _, root := range []string{initramfs.FormatCpio, initramfs.FormatErofs} {
		syms, err := initramfs.RootKconfig(root, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, sym := range syms {
			fmt.Fprintf(&cfg, "CONFIG_%s=y\n", sym)
		}
	}
	for _, r := range features.Required(m) {
		fmt.Fprintf(&cfg, "CONFIG_%s=y\n", r.Symbol)
	}
	for _, sym := range image.SeccompKconfig {
		fmt.Fprintf(&cfg, "CONFIG_%s=y\n", sym)
	}
	files := map[string]string{image.ConfigFile: cfg.String(), image.KernelMeta: "{}"}
	for _, f := range []string{image.KernelFile, image.VmlinuxFile, image.SystemMapFile} {
		files[f] = ""
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := &vm.Image{Name: "kernel", Target: target, Kernel: image.KernelFile, Initramfs: image.InitramfsFile}
	if err := img.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBuildOutputChecks: an -o that a build would destroy, and a
// --kernel-from that is no image, fail at once, before the trace; the
// directory is left as it was.
func TestBuildOutputChecks(t *testing.T) {
	dir := t.TempDir()
	notImage := filepath.Join(dir, "notes")
	os.Mkdir(notImage, 0o755)
	os.WriteFile(filepath.Join(notImage, "todo.txt"), []byte("keep me"), 0o644)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", notImage}, "is not empty and holds no image"},
		{[]string{"-o", file}, "is a file, not an image directory"},
		{[]string{"-o", filepath.Join(dir, "new.image"), "--kernel-from", dir}, "--kernel-from takes an image directory"},
	} {
		var stdout, stderr bytes.Buffer
		args := append(append([]string{"build", "--no-boot"}, tc.args...), "--", "/bin/true")
		code := Main(context.Background(), args, nil, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), tc.want) || strings.Contains(stderr.String(), "trace") {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit 1 with %q before the trace", tc.args, code, stderr.String(), tc.want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(notImage, "todo.txt")); string(b) != "keep me" {
		t.Errorf("the directory given to -o changed")
	}
}

// TestConcurrentBuilds: two builds of one spec into one image directory
// at once both finish, and leave one complete image (its files as its
// report says) and no staging dir.
func TestConcurrentBuilds(t *testing.T) {
	testenv.Root(t)
	dir := t.TempDir()
	mpath, m := traceTrue(t, dir)
	kernel := fakeKernelImage(t, m, spec.TargetMicrovm)
	out := filepath.Join(dir, "true.image")
	args := []string{"build", "--manifest", mpath, "--kernel-from", kernel, "--no-boot", "-o", out, "--", "/bin/true"}
	type result struct {
		code   int
		stderr string
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), args, nil, &stdout, &stderr)
			results <- result{code, stderr.String()}
		}()
	}
	for range 2 {
		if r := <-results; r.code != 0 {
			t.Errorf("a build: exit %d\n%s", r.code, r.stderr)
		}
	}
	rep, err := image.ReadReport(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := image.CheckFiles(out, rep); err != nil {
		t.Error(err)
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, ".true.image.*")); len(ents) > 0 {
		t.Errorf("left beside the image: %v", ents)
	}
}
