package vm

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestParsePort(t *testing.T) {
	tests := []struct {
		in      string
		want    PortMap
		wantErr string
	}{
		{in: "8080:80", want: PortMap{Host: 8080, Guest: 80, Proto: "tcp"}},
		{in: "80", want: PortMap{Host: 0, Guest: 80, Proto: "tcp"}},
		{in: "0:80", want: PortMap{Host: 0, Guest: 80, Proto: "tcp"}},
		{in: "8080:80/udp", want: PortMap{Host: 8080, Guest: 80, Proto: "udp"}},
		{in: "53/udp", want: PortMap{Host: 0, Guest: 53, Proto: "udp"}},
		{in: "8080:80/tcp", want: PortMap{Host: 8080, Guest: 80, Proto: "tcp"}},
		{in: "", wantErr: "guest port must be a number"},
		{in: "http", wantErr: "guest port must be a number"},
		{in: "8080:", wantErr: "guest port must be a number"},
		{in: ":80", wantErr: "host port must be a number"},
		{in: "8080:0", wantErr: "guest port must be a number in 1-65535"},
		{in: "70000:80", wantErr: "host port must be a number in 0-65535"},
		{in: "-1:80", wantErr: "host port must be a number"},
		{in: "+80", wantErr: "guest port must be a number"},
		{in: "8080:80/sctp", wantErr: `protocol "sctp" is not tcp or udp`},
		{in: "0.0.0.0:8080:80", wantErr: "from 127.0.0.1 only"},
	}
	for _, tt := range tests {
		got, err := ParsePort(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParsePort(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePort(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParsePort(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in   string
		want int // 0: an error
	}{
		{"256M", 256}, {"256m", 256}, {"512", 512}, {"1G", 1024}, {"2g", 2048},
		{"128MiB", 128}, {"1GiB", 1024}, {"64MB", 64},
		{"", 0}, {"M", 0}, {"1T", 0}, {"1.5G", 0}, {"8M", 0}, {"-256M", 0},
		{"99999999999999G", 0}, {"256 M", 0},
	}
	for _, tt := range tests {
		got, err := ParseMemory(tt.in)
		if tt.want == 0 {
			if err == nil {
				t.Errorf("ParseMemory(%q) = %d, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseMemory(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
		}
	}
}

func testImage(target string) *Image {
	return &Image{Name: "demo", Target: target, Kernel: "bzImage", Initramfs: "initramfs.cpio.xz"}
}

// TestCommandGolden compares QEMU command lines with testdata/*.golden
// (go test -run TestCommandGolden -update rewrites them).
func TestCommandGolden(t *testing.T) {
	defer func(f func() error) { kvmUsable = f }(kvmUsable)
	kvmUsable = func() error { return nil }

	redis := testImage(TargetMicrovm)
	redis.Name = "redis"
	redis.Ports = []Port{{Guest: 6379}}
	redis.Ready = "tcp:6379"
	redis.MemoryMB = 128
	redis.Cmdline = "loglevel=4"
	noNet := testImage(TargetMicrovm)
	noNet.NoNet = true
	disk := func(target string) *Image {
		img := testImage(target)
		img.Initramfs, img.Disk = "", "root.erofs"
		return img
	}
	vols := []Volume{{Host: "/data/pg,1.ext4", Guest: "/var/lib/postgresql", Type: "ext4", Image: "pg"},
		{Host: "/tmp/tools.erofs", Guest: "/.bespoke/tools", Type: "erofs", ReadOnly: true}}

	tests := []struct {
		name string
		cfg  Config
	}{
		{"microvm-tcg", Config{Image: testImage(TargetMicrovm), Accel: "tcg",
			Ports: []PortMap{{Host: 8080, Guest: 80, Proto: "tcp"}}}},
		{"microvm-kvm", Config{Image: testImage(TargetMicrovm), Accel: "kvm", MemoryMB: 512, CPUs: 2,
			Ports: []PortMap{{Host: 8080, Guest: 80, Proto: "tcp"}, {Host: 5353, Guest: 53, Proto: "udp"}}}},
		{"pc-tcg", Config{Image: testImage(TargetPC), Accel: "tcg", MemoryMB: 1024, CPUs: 2,
			Ports: []PortMap{{Host: 8080, Guest: 80, Proto: "tcp"}}}},
		{"pc-kvm-override", Config{Image: testImage(TargetPC), Accel: "kvm",
			Env: []string{"GREETING=hello world", "DEBUG=1"}, Args: []string{"-c", "echo 'hi'; exit 3"}}},
		{"microvm-image-ports", Config{Image: redis, Accel: "tcg",
			Ports: []PortMap{{Host: 16379, Guest: 6379, Proto: "tcp"}}, KernelLog: true}},
		{"microvm-nonet", Config{Image: noNet, Accel: "tcg", Env: []string{"A=1"}, Args: []string{}}},
		{"microvm-erofs-volumes", Config{Image: disk(TargetMicrovm), Accel: "tcg", Volumes: vols}},
		{"pc-erofs", Config{Image: disk(TargetPC), Accel: "tcg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.ImageDir = "/images/demo"
			argv, err := Command(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := ShellQuote(argv) + "\n"
			path := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("command line differs from %s (-want +got):\n%s", path, diff)
			}
		})
	}
}

func TestCommandDetails(t *testing.T) {
	defer func(f func() error) { kvmUsable = f }(kvmUsable)
	kvmUsable = func() error { return errors.New("open /dev/kvm: no such file or directory") }

	t.Run("auto picks tcg without kvm", func(t *testing.T) {
		argv, err := Command(Config{ImageDir: "/i", Image: testImage(TargetPC)})
		if err != nil {
			t.Fatal(err)
		}
		if got := ShellQuote(argv); !strings.Contains(got, "-accel tcg") {
			t.Errorf("command %q, want -accel tcg", got)
		}
	})
	t.Run("under tcg a -march kernel gets the max CPU, another one qemu64 with RDRAND", func(t *testing.T) {
		img := testImage(TargetMicrovm)
		img.March = "x86-64-v3"
		argv, err := Command(Config{ImageDir: "/i", Image: img})
		if err != nil {
			t.Fatal(err)
		}
		if got := ShellQuote(argv); !strings.Contains(got, "-accel tcg -cpu max") {
			t.Errorf("command %q, want -accel tcg -cpu max", got)
		}
		argv, _ = Command(Config{ImageDir: "/i", Image: testImage(TargetMicrovm)})
		if got := ShellQuote(argv); !strings.Contains(got, "-accel tcg -cpu qemu64,+rdrand") {
			t.Errorf("command %q of a generic kernel, want QEMU's default CPU with RDRAND", got)
		}
	})
	t.Run("seccomp", func(t *testing.T) {
		img := testImage(TargetMicrovm)
		img.Seccomp = &Seccomp{Mode: "log", Allow: []string{"read", "write", "epoll_wait"}}
		for mode, want := range map[string]string{"": "log", "enforce": "enforce", "off": "off"} {
			argv, err := Command(Config{ImageDir: "/i", Image: img, Seccomp: mode})
			if err != nil {
				t.Fatal(err)
			}
			got := ShellQuote(argv)
			i := strings.Index(got, "bespoke.seccomp=")
			if i < 0 {
				t.Fatalf("--seccomp %q: command %q sets no filter", mode, got)
			}
			v, _, _ := strings.Cut(got[i+len("bespoke.seccomp="):], " ")
			m, allow, err := protocol.DecodeSeccomp(strings.Trim(v, "'"))
			if err != nil || m != want || (want != "off" && !slices.Equal(allow, []int{0, 1, 232})) {
				t.Errorf("--seccomp %q: %q decodes to %q %v %v, want %s with read, write, epoll_wait", mode, v, m, allow, err, want)
			}
		}
		plain := testImage(TargetMicrovm)
		if argv, _ := Command(Config{ImageDir: "/i", Image: plain}); strings.Contains(ShellQuote(argv), "seccomp") {
			t.Errorf("an image without a filter: %q sets one", ShellQuote(argv))
		}
		if _, err := Command(Config{ImageDir: "/i", Image: plain, Seccomp: "enforce"}); err == nil || !strings.Contains(err.Error(), "rebuild it with --seccomp enforce") {
			t.Errorf("enforce on an image without a filter: %v, want an error saying to rebuild", err)
		}
		img.Seccomp.Allow = append(img.Seccomp.Allow, "frobnicate")
		if err := img.Check(); err == nil || !strings.Contains(err.Error(), "frobnicate") {
			t.Errorf("Check of an allowlist with a bad name: %v", err)
		}
	})
	t.Run("kvm asked but unusable", func(t *testing.T) {
		_, err := Command(Config{ImageDir: "/i", Image: testImage(TargetPC), Accel: "kvm"})
		if !errors.Is(err, ErrNoKVM) || !strings.Contains(err.Error(), "--accel tcg") {
			t.Errorf("error = %v, want ErrNoKVM suggesting --accel tcg", err)
		}
	})
	t.Run("free host ports", func(t *testing.T) {
		img := testImage(TargetMicrovm)
		img.Ports = []Port{{Guest: 6379}}
		p, err := newPlan(Config{ImageDir: "/i", Image: img, Ports: []PortMap{{Guest: 80, Proto: "tcp"}, {Guest: 53, Proto: "udp"}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.ports) != 3 {
			t.Fatalf("ports %v, want 3 (80, 53/udp, the image's 6379)", p.ports)
		}
		for _, f := range p.ports {
			if f.Host == 0 || !strings.Contains(ShellQuote(p.args), "hostfwd="+f.Proto+":127.0.0.1:"+strconv.Itoa(f.Host)+"-:"+strconv.Itoa(f.Guest)) {
				t.Errorf("port %v not forwarded on a chosen host port in %q", f, ShellQuote(p.args))
			}
		}
	})
	t.Run("firecracker", func(t *testing.T) {
		_, err := Command(Config{ImageDir: "/i", Image: testImage(TargetFirecracker)})
		if err == nil || !strings.Contains(err.Error(), "run its vmlinux") {
			t.Errorf("error = %v, want one saying to use firecracker", err)
		}
	})
	t.Run("command line too long", func(t *testing.T) {
		long := strings.Repeat("x", 1500)
		_, err := Command(Config{ImageDir: "/i", Image: testImage(TargetPC), Accel: "tcg", Env: []string{"BIG=" + long}})
		if err == nil || !strings.Contains(err.Error(), "kernel command line too long") {
			t.Errorf("error = %v, want 'kernel command line too long'", err)
		}
		// Near the limit: fits on pc, not on microvm, where QEMU adds a
		// virtio_mmio.device parameter.
		for n := 1; n < 2048; n++ {
			args := []string{strings.Repeat("y", n)}
			cmd, _ := kernelCmdline(testImage(TargetPC), Config{Args: args}, AccelTCG)
			if len(cmd) <= maxCmdline-microvmMMIOReserve+4 {
				continue
			}
			if _, err := Command(Config{ImageDir: "/i", Image: testImage(TargetPC), Accel: "tcg", Args: args}); err != nil {
				t.Errorf("pc, %d-byte command line: %v, want it accepted", len(cmd), err)
			}
			if _, err := Command(Config{ImageDir: "/i", Image: testImage(TargetMicrovm), Accel: "tcg", Args: args}); err == nil {
				t.Errorf("microvm, %d-byte command line: accepted, want 'too long'", len(cmd))
			}
			break
		}
	})
	t.Run("bad env", func(t *testing.T) {
		_, err := Command(Config{ImageDir: "/i", Image: testImage(TargetPC), Env: []string{"NOEQUALS"}})
		if err == nil || !strings.Contains(err.Error(), "want K=V") {
			t.Errorf("error = %v, want 'want K=V'", err)
		}
	})
	t.Run("port twice", func(t *testing.T) {
		_, err := Command(Config{ImageDir: "/i", Image: testImage(TargetPC), Ports: []PortMap{{Host: 1, Guest: 80, Proto: "tcp"}, {Host: 2, Guest: 80, Proto: "tcp"}}})
		if err == nil || !strings.Contains(err.Error(), "forwarded twice") {
			t.Errorf("error = %v, want 'forwarded twice'", err)
		}
	})
}

func TestImageRoundTrip(t *testing.T) {
	dir := t.TempDir()
	img := &Image{Name: "redis", Target: TargetMicrovm, Kernel: "bzImage", Initramfs: "initramfs.cpio.xz",
		Cmdline: "loglevel=4", MemoryMB: 128, CPUs: 2, Ports: []Port{{Guest: 6379, Proto: "tcp"}}, Ready: "tcp:6379"}
	if err := img.Write(dir); err != nil {
		t.Fatal(err)
	}
	got, err := LoadImage(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := *img
	want.Schema = ImageSchema
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("LoadImage after Write (-want +got):\n%s", diff)
	}

	bad := []struct{ json, wantErr string }{
		{`{"target":"qemu-pc","kernel":"bzImage"}`, "no root: name an initramfs or a disk"},
		{`{"target":"qemu-pc","kernel":"k","initramfs":"i","disk":"d"}`, "both an initramfs (i) and a root disk (d)"},
		{`{"target":"qemu-pc","kernel":"k","disk":"../root.erofs"}`, `disk "../root.erofs": want a file name inside`},
		{`{"target":"xen","kernel":"bzImage","initramfs":"i"}`, `unknown target "xen"`},
		{`{"target":"qemu-pc","kernel":"../bzImage","initramfs":"i"}`, "a file name inside the image directory"},
		{`{"target":"qemu-pc","kernel":"k","initramfs":"i","ready":"http:80"}`, "want tcp:PORT, log:REGEX"},
		{`{"target":"qemu-pc","kernel":"k","initramfs":"i","ready":"log:("}`, "missing closing"},
		{`{"schema":99,"target":"qemu-pc","kernel":"k","initramfs":"i"}`, "update bespoke"},
		{`{"target":"qemu-pc","kernel":"k","initramfs":"i","ports":[{"guest":70000}]}`, "want 1-65535"},
	}
	for _, b := range bad {
		os.WriteFile(filepath.Join(dir, ImageFile), []byte(b.json), 0o644)
		if _, err := LoadImage(dir); err == nil || !strings.Contains(err.Error(), b.wantErr) {
			t.Errorf("LoadImage(%s) error = %v, want one containing %q", b.json, err, b.wantErr)
		}
	}
	if _, err := LoadImage(t.TempDir()); err == nil || !strings.Contains(err.Error(), "bespoke build") {
		t.Errorf("LoadImage(empty dir) error = %v, want one pointing to bespoke build", err)
	}
}
