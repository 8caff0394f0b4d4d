package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/vm"
)

// runImageDir writes an image directory with empty kernel and initramfs
// files, for a fake QEMU.
func runImageDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	img := &vm.Image{Name: "demo", Target: vm.TargetMicrovm, Kernel: "bzImage", Initramfs: "initramfs.cpio.xz"}
	if err := img.Write(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"bzImage", "initramfs.cpio.xz"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fakeQEMU writes a script that prints console lines like a booting guest.
func fakeQEMU(t *testing.T, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qemu-system-x86_64")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunVerb(t *testing.T) {
	dir := runImageDir(t)
	tests := []struct {
		name       string
		args       []string // after "run", "--qemu", fake, dir
		script     string
		wantCode   int
		wantStdout string // contained
		wantStderr string // contained
	}{
		{
			name: "program exit status",
			script: `echo "bespoke-init: started uptime=0.5"; echo "bespoke-init: exec pid=2 uptime=0.6"
echo "hello"; sleep 0.1; echo "bespoke-init: exit code=3 uptime=0.7"`,
			wantCode:   3,
			wantStdout: "hello\n",
			wantStderr: "bespoke: boot: /init ",
		},
		{
			name:     "exit 0",
			script:   `echo "bespoke-init: exit code=0 uptime=0.7"`,
			wantCode: 0,
		},
		{
			name:       "init error",
			script:     `echo "bespoke-init: error uptime=0.6 msg=\"no /etc/bespoke/init.json\""`,
			wantCode:   125,
			wantStderr: "bespoke run: guest init failed: no /etc/bespoke/init.json\nlast console lines:\n",
		},
		{
			name:       "kernel panic",
			script:     `echo "Kernel panic - not syncing: Attempted to kill init!"`,
			wantCode:   1,
			wantStderr: "guest ended without the program's exit status",
		},
		{
			name:       "timeout",
			args:       []string{"--timeout", "200ms"},
			script:     `exec sleep 30`,
			wantCode:   1,
			wantStderr: "timed out: the guest still ran after 200ms",
		},
		{
			name:       "bad port",
			args:       []string{"-p", "80:http"},
			wantCode:   2,
			wantStderr: `-p: bad port "80:http"`,
		},
		{
			name:       "bad memory",
			args:       []string{"-m", "256K"},
			wantCode:   2,
			wantStderr: `-m: bad memory size "256K"`,
		},
		{
			name:       "bad accel",
			args:       []string{"--accel", "hvf"},
			wantCode:   2,
			wantStderr: `--accel "hvf": want auto, kvm or tcg`,
		},
		{
			name:       "two image dirs",
			args:       []string{"extra"},
			wantCode:   2,
			wantStderr: "want one IMAGE_DIR, got 2 arguments",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", "--qemu", fakeQEMU(t, tt.script), dir}, tt.args...)
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), args, nil, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q, want it to contain %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

func TestRunDryRun(t *testing.T) {
	dir := runImageDir(t)
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"run", dir, "-n", "-p", "8080:80", "-p", "5353:53/udp", "-m", "1G",
		"--cpus", "2", "--accel", "tcg", "-e", "A=b c", "--", "-x", "y"}, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, stderr.String())
	}
	want, err := vm.Command(vm.Config{ImageDir: dir, Accel: "tcg", MemoryMB: 1024, CPUs: 2,
		Ports: []vm.PortMap{{Host: 8080, Guest: 80, Proto: "tcp"}, {Host: 5353, Guest: 53, Proto: "udp"}},
		Env:   []string{"A=b c"}, Args: []string{"-x", "y"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSuffix(stdout.String(), "\n"); got != vm.ShellQuote(want) {
		t.Errorf("bespoke run -n printed\n%s\nwant\n%s", got, vm.ShellQuote(want))
	}
	for _, s := range []string{"-m 1024", "-smp 2", "hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:127.0.0.1:5353-:53", "bespoke.override="} {
		if !strings.Contains(stdout.String(), s) {
			t.Errorf("command line %q lacks %q", stdout.String(), s)
		}
	}
}

func TestRunNotAnImage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"run", t.TempDir()}, nil, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "bespoke build") {
		t.Errorf("exit status %d, stderr %q; want 1 and a pointer to bespoke build", code, stderr.String())
	}
}
