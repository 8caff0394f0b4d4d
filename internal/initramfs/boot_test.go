package initramfs

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/bespoke-os/bespoke/internal/testkernel"
	"github.com/bespoke-os/bespoke/internal/vm"
)

// TestInitBinary builds the guest init from this module's source (the
// test runs inside it) and checks it is a static x86-64 executable, and
// that a second call reuses the cached build.
func TestInitBinary(t *testing.T) {
	testenv.Full(t)
	t.Setenv("BESPOKE_INIT", "")
	os.Unsetenv("BESPOKE_INIT")
	cache := t.TempDir()
	p, err := InitBinary(context.Background(), cache)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p, cache) {
		t.Errorf("InitBinary = %s, want a build in the cache %s", p, cache)
	}
	if err := checkStatic(p); err != nil {
		t.Error(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("%s has mode %v, want executable", p, fi.Mode())
	}
	t.Logf("guest init: %s, %d bytes", p, fi.Size())
	again, err := InitBinary(context.Background(), cache)
	if err != nil || again != p {
		t.Errorf("second InitBinary = %s, %v; want the cached %s", again, err, p)
	}

	t.Setenv("BESPOKE_INIT", "/nonexistent/bespoke-init")
	if _, err := InitBinary(context.Background(), cache); err == nil || !strings.Contains(err.Error(), "BESPOKE_INIT") {
		t.Errorf("with a missing $BESPOKE_INIT: %v, want an error naming BESPOKE_INIT", err)
	}
}

// TestBootShell boots the guest init under QEMU with the shared test
// kernel (testkernel; a cache hit under make test), running /bin/sh as
// the program. The image package's end-to-end test boots the images
// bespoke builds; this one exercises the init alone.
func TestBootShell(t *testing.T) {
	qemu := testenv.Command(t, "qemu-system-x86_64")
	kernel := testkernel.Build(t, vm.TargetMicrovm).BzImage()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	init, err := InitBinary(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{Schema: manifest.Schema, Closure: lddClosure(t, "/bin/sh")}
	script := `echo hello from $(echo sh) as $HOME; while read l; do echo "mount: $l"; done < /proc/mounts; ` +
		`while read l; do echo "route: $l"; done < /proc/net/route; echo "env: $A $B"; exit 7`
	img := filepath.Join(t.TempDir(), "initramfs.img")
	rep, err := Build(ctx, Options{
		Manifest: m,
		Init:     init,
		Config: protocol.Config{
			Name: "shell", Path: "/bin/sh", Args: []string{"-c", "exit 1"}, Env: []string{"A=from-config"},
			Dirs: []protocol.Dir{{Path: "/run/app", Mode: 0o750, Uid: 0, Gid: 0}},
		},
		Compression: CompressXZ,
		Output:      img,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("initramfs: %d bytes xz, %d bytes cpio", rep.CompressedBytes, rep.UncompressedBytes)
	override, _ := protocol.EncodeOverride(protocol.Override{Args: []string{"-c", script}, Env: []string{"B=from-override"}})
	cmdline := "console=ttyS0 reboot=t panic=-1 " + protocol.ParamNet + "=10.0.2.15/24,10.0.2.2 " + protocol.ParamOverride + "=" + override
	cmd := exec.CommandContext(ctx, qemu, "-M", "microvm,acpi=off", "-m", "256", "-nodefaults", "-no-user-config", "-nographic",
		"-serial", "stdio", "-no-reboot", "-kernel", kernel, "-initrd", img, "-append", cmdline,
		"-netdev", "user,id=n0", "-device", "virtio-net-device,netdev=n0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	t.Logf("QEMU ran %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, out.String())
	}
	if i := strings.Index(out.String(), "Run /init"); i >= 0 {
		t.Logf("console from /init:\n%s", out.String()[i:])
	}
	var events []protocol.Event
	for _, line := range strings.Split(out.String(), "\n") {
		if e, ok := protocol.ParseEvent(line); ok {
			events = append(events, e)
		}
	}
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e.Kind)
	}
	if got := strings.Join(kinds, " "); got != "started exec exit" {
		t.Fatalf("markers %q, want started exec exit\n%s", got, out.String())
	}
	if e := events[2]; e.Code != 7 || e.Signal != "" {
		t.Errorf("exit marker %+v, want code 7", e)
	}
	for _, want := range []string{
		"hello from sh as /root", "mount: proc /proc proc", "mount: devtmpfs /dev devtmpfs",
		"mount: tmpfs /tmp tmpfs", "route: eth0\t00000000\t0202000A", "env: from-config from-override",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("console lacks %q\n%s", want, out.String())
		}
	}
}

// TestBootInitError boots an image whose init config cannot be applied:
// the init must print the error marker and exit code 125, and end the VM.
func TestBootInitError(t *testing.T) {
	qemu := testenv.Command(t, "qemu-system-x86_64")
	kernel := testkernel.Build(t, vm.TargetMicrovm).BzImage()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	init, err := InitBinary(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "initramfs.img")
	_, err = Build(ctx, Options{
		Manifest:    &manifest.Manifest{Schema: manifest.Schema, Closure: lddClosure(t, "/bin/sh")},
		Init:        init,
		Config:      protocol.Config{Name: "bad", Path: "/bin/sh", Rlimits: map[string]uint64{"BOGUS": 1}},
		Compression: CompressXZ,
		Output:      img,
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, qemu, "-M", "microvm,acpi=off", "-m", "256", "-nodefaults", "-no-user-config", "-nographic",
		"-serial", "stdio", "-no-reboot", "-kernel", kernel, "-initrd", img, "-append", "console=ttyS0 reboot=t panic=-1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, out)
	}
	var events []protocol.Event
	for _, line := range strings.Split(string(out), "\n") {
		if e, ok := protocol.ParseEvent(line); ok {
			events = append(events, e)
		}
	}
	if len(events) != 3 || events[1].Kind != protocol.EventError || events[2].Kind != protocol.EventExit {
		t.Fatalf("markers %+v, want started, error, exit\n%s", events, out)
	}
	if !strings.Contains(events[1].Msg, `unknown rlimit "BOGUS"`) {
		t.Errorf("error marker %q, want it to name the unknown rlimit", events[1].Msg)
	}
	if events[2].Code != protocol.ExitCodeInitError {
		t.Errorf("exit code %d, want %d", events[2].Code, protocol.ExitCodeInitError)
	}
}

// lddClosure returns the ELF closure of prog as ldd reports it.
func lddClosure(t *testing.T, prog string) []manifest.File {
	t.Helper()
	ldd, err := exec.LookPath("ldd")
	if err != nil {
		t.Skip("ldd not installed")
	}
	out, err := exec.Command(ldd, prog).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", prog, err)
	}
	files := []manifest.File{{Path: prog, Kind: "program"}}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			files = append(files, manifest.File{Path: f[2], Kind: "library"})
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			files = append(files, manifest.File{Path: f[0], Kind: "interpreter"})
		}
	}
	if len(files) < 3 {
		t.Fatalf("could not read the closure of %s from ldd:\n%s", prog, out)
	}
	return files
}
