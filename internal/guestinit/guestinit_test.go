package guestinit

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
	}{
		{"", map[string]string{}},
		{"console=ttyS0 reboot=t panic=-1 quiet", map[string]string{"console": "ttyS0", "reboot": "t", "panic": "-1", "quiet": ""}},
		{"  a=1   a=2\tb=x=y\n", map[string]string{"a": "2", "b": "x=y"}},
		{`init=/init "bespoke.override=eyJ9" x="a b" y=""`, map[string]string{"init": "/init", "bespoke.override": "eyJ9", "x": "a b", "y": ""}},
	} {
		got := ParseCmdline(tc.in)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseCmdline(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestParseNet(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Net
		wantErr bool
	}{
		{"10.0.2.15/24,10.0.2.2", Net{IPv4{10, 0, 2, 15}, 24, IPv4{10, 0, 2, 2}, true}, false},
		{"192.168.1.7/16", Net{Addr: IPv4{192, 168, 1, 7}, Bits: 16}, false},
		{"10.0.2.15,10.0.2.2", Net{}, true},
		{"10.0.2.15/24,gw", Net{}, true},
		{"fd00::2/64,fd00::1", Net{}, true},
		{"", Net{}, true},
	} {
		got, err := ParseNet(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseNet(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if err == nil && got != tc.want {
			t.Errorf("ParseNet(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// TestParseNetAsNetip checks ParseNet against net/netip, which the init
// used before (it is too big for it).
func TestParseNetAsNetip(t *testing.T) {
	viaNetip := func(v string) (Net, bool) {
		a, gw, hasGW := strings.Cut(v, ",")
		p, err := netip.ParsePrefix(a)
		if err != nil || !p.Addr().Is4() {
			return Net{}, false
		}
		n := Net{Addr: p.Addr().As4(), Bits: p.Bits()}
		if hasGW {
			g, err := netip.ParseAddr(gw)
			if err != nil || !g.Is4() {
				return Net{}, false
			}
			n.Gateway, n.HasGateway = g.As4(), true
		}
		return n, true
	}
	for _, in := range []string{
		"10.0.2.15/24,10.0.2.2", "0.0.0.0/0", "255.255.255.255/32", "1.2.3.4/33", "1.2.3.4/-1",
		"1.2.3.4/024", "1.2.3.4/+24", "01.2.3.4/24", "1.2.3.256/24", "1.2.3/24", "1.2.3.4.5/24",
		"1.2.3.4/24,", "1.2.3.4/24,1.2.3.4,", "1..3.4/8", " 1.2.3.4/8", "1.2.3.4/8,::1",
		"::ffff:1.2.3.4/120", "1.2.3.4", "1.2.3.4/", "/24",
	} {
		want, wantOK := viaNetip(in)
		got, err := ParseNet(in)
		if (err == nil) != wantOK || err == nil && got != want {
			t.Errorf("ParseNet(%q) = %+v, %v; net/netip gives %+v, %v", in, got, err, want, wantOK)
		}
	}
}

func TestMergeEnv(t *testing.T) {
	got := MergeEnv(
		[]string{"PATH=/bin", "HOME=/", "TERM=linux"},
		[]string{"A=1", "HOME=/var/lib/app"},
		[]string{"A=2", "B=x=y", "PATH=/opt/bin"},
	)
	want := []string{"PATH=/opt/bin", "HOME=/var/lib/app", "TERM=linux", "A=2", "B=x=y"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("MergeEnv (-want +got):\n%s", diff)
	}
}

func TestDecodeConfig(t *testing.T) {
	in := `{"name":"redis","path":"/usr/bin/redis-server","args":["--port","6379"],"env":["A=1"],
		"uid":101,"gid":102,"groups":[102,5],"workdir":"/var/lib/redis","hostname":"r",
		"rlimits":{"NOFILE":65536},"dirs":[{"path":"/run/redis","mode":1517,"uid":101,"gid":102}],
		"mounts":[{"source":"tmpfs","target":"/data","type":"tmpfs","options":"size=10m"}],
		"stop_timeout_sec":3}`
	got, err := DecodeConfig(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.Config{
		Name: "redis", Path: "/usr/bin/redis-server", Args: []string{"--port", "6379"}, Env: []string{"A=1"},
		Uid: 101, Gid: 102, Groups: []int{102, 5}, Workdir: "/var/lib/redis", Hostname: "r",
		Rlimits:        map[string]uint64{"NOFILE": 65536},
		Dirs:           []protocol.Dir{{Path: "/run/redis", Mode: 0o2755, Uid: 101, Gid: 102}},
		Mounts:         []protocol.Mount{{Source: "tmpfs", Target: "/data", Type: "tmpfs", Options: "size=10m"}},
		StopTimeoutSec: 3,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DecodeConfig (-want +got):\n%s", diff)
	}
	for _, bad := range []string{
		`{"path":"redis-server"}`,
		`{"path":"/x","dirs":[{"path":"run"}]}`,
		`{"path":"/x","mounts":[{"target":"/data"}]}`,
		`{"path":`,
	} {
		if _, err := DecodeConfig(strings.NewReader(bad)); err == nil {
			t.Errorf("DecodeConfig(%s) succeeded, want an error", bad)
		}
	}
}

func TestHomeOf(t *testing.T) {
	passwd := "root:x:0:0:root:/root:/bin/sh\nredis:x:101:102:redis:/var/lib/redis:/usr/sbin/nologin\nbad line\nnohome:x:7:7::::\n"
	for uid, want := range map[int]string{0: "/root", 101: "/var/lib/redis", 7: "/", 999: "/"} {
		if got := HomeOf(strings.NewReader(passwd), uid); got != want {
			t.Errorf("HomeOf(uid %d) = %q, want %q", uid, got, want)
		}
	}
}

func TestMakePlan(t *testing.T) {
	cfg := protocol.Config{
		Name: "app", Path: "/usr/bin/app", Args: []string{"-c", "/etc/app.conf"},
		Env: []string{"A=1", "TERM=vt100"}, Uid: 5, Gid: 6, Groups: []int{6},
	}
	override, err := protocol.EncodeOverride(protocol.Override{Args: []string{"--version"}, Env: []string{"A=2", "B=3"}})
	if err != nil {
		t.Fatal(err)
	}
	seccompParam, err := protocol.EncodeSeccomp(protocol.SeccompEnforce, []int{232, 0, 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cmdline, home string
		want                Plan
		wantErr             string
	}{
		{
			name: "defaults", cmdline: "console=ttyS0", home: "",
			want: Plan{
				Path: "/usr/bin/app", Argv: []string{"/usr/bin/app", "-c", "/etc/app.conf"},
				Env: []string{"PATH=" + DefaultPath, "HOME=/", "TERM=vt100", "A=1"},
				Dir: "/", Uid: 5, Gid: 6, Groups: []int{6}, Hostname: "app", StopSignal: syscall.SIGTERM,
			},
		},
		{
			name: "traced", cmdline: "console=ttyS0 " + protocol.ParamTrace + "=/.bespoke/trace", home: "",
			want: Plan{
				Path: "/usr/bin/app", Argv: []string{"/usr/bin/app", "-c", "/etc/app.conf"},
				Env: []string{"PATH=" + DefaultPath, "HOME=/", "TERM=vt100", "A=1"},
				Dir: "/", Uid: 5, Gid: 6, Groups: []int{6}, Hostname: "app", StopSignal: syscall.SIGTERM,
				Tracer: "/.bespoke/trace",
				TracerArgv: []string{"/.bespoke/trace", "-uid", "5", "-gid", "6", "-groups", "6", "-stop-signal", "SIGTERM", "-grace", "10s",
					"--", "/usr/bin/app", "-c", "/etc/app.conf"},
			},
		},
		{name: "relative tracer", cmdline: protocol.ParamTrace + "=trace", wantErr: protocol.ParamTrace},
		{
			name: "override and net", cmdline: "console=ttyS0 " + protocol.ParamOverride + "=" + override + " " + protocol.ParamNet + "=10.0.2.15/24,10.0.2.2",
			home: "/home/app",
			want: Plan{
				Path: "/usr/bin/app", Argv: []string{"/usr/bin/app", "--version"},
				Env: []string{"PATH=" + DefaultPath, "HOME=/home/app", "TERM=vt100", "A=2", "B=3"},
				Dir: "/", Uid: 5, Gid: 6, Groups: []int{6}, Hostname: "app", StopSignal: syscall.SIGTERM,
				Net: &Net{IPv4{10, 0, 2, 15}, 24, IPv4{10, 0, 2, 2}, true},
			},
		},
		{
			name: "probes", cmdline: protocol.ParamProbeSyscalls + "=99,39",
			want: Plan{
				Path: "/usr/bin/app", Argv: []string{"/usr/bin/app", "-c", "/etc/app.conf"},
				Env: []string{"PATH=" + DefaultPath, "HOME=/", "TERM=vt100", "A=1"},
				Dir: "/", Uid: 5, Gid: 6, Groups: []int{6}, Hostname: "app", StopSignal: syscall.SIGTERM,
				ProbeSyscalls: []int{99, 39},
			},
		},
		{
			name: "seccomp", cmdline: protocol.ParamSeccomp + "=" + seccompParam,
			want: Plan{
				Path: "/usr/bin/app", Argv: []string{"/usr/bin/app", "-c", "/etc/app.conf"},
				Env: []string{"PATH=" + DefaultPath, "HOME=/", "TERM=vt100", "A=1"},
				Dir: "/", Uid: 5, Gid: 6, Groups: []int{6}, Hostname: "app", StopSignal: syscall.SIGTERM,
				Seccomp: protocol.SeccompEnforce, SeccompAllow: []int{0, 1, 232},
			},
		},
		{
			name: "seccomp off", cmdline: protocol.ParamSeccomp + "=off",
			want: Plan{
				Path: "/usr/bin/app", Argv: []string{"/usr/bin/app", "-c", "/etc/app.conf"},
				Env: []string{"PATH=" + DefaultPath, "HOME=/", "TERM=vt100", "A=1"},
				Dir: "/", Uid: 5, Gid: 6, Groups: []int{6}, Hostname: "app", StopSignal: syscall.SIGTERM,
			},
		},
		{
			// The tracer's boot runs without the filter.
			name: "seccomp traced", cmdline: protocol.ParamSeccomp + "=" + seccompParam + " " + protocol.ParamTrace + "=/t",
			want: Plan{
				Path: "/usr/bin/app", Argv: []string{"/usr/bin/app", "-c", "/etc/app.conf"},
				Env: []string{"PATH=" + DefaultPath, "HOME=/", "TERM=vt100", "A=1"},
				Dir: "/", Uid: 5, Gid: 6, Groups: []int{6}, Hostname: "app", StopSignal: syscall.SIGTERM,
				Tracer: "/t", TracerArgv: []string{"/t", "-uid", "5", "-gid", "6", "-groups", "6", "-stop-signal", "SIGTERM", "-grace", "10s",
					"--", "/usr/bin/app", "-c", "/etc/app.conf"},
			},
		},
		{name: "bad seccomp", cmdline: protocol.ParamSeccomp + "=on", wantErr: protocol.ParamSeccomp},
		{name: "bad probe", cmdline: protocol.ParamProbeSyscalls + "=sysinfo", wantErr: protocol.ParamProbeSyscalls},
		{name: "bad override", cmdline: protocol.ParamOverride + "=!!", wantErr: protocol.ParamOverride},
		{name: "bad net", cmdline: protocol.ParamNet + "=10.0.2.15", wantErr: protocol.ParamNet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MakePlan(cfg, tc.cmdline, tc.home)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("MakePlan error = %v, want one mentioning %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("MakePlan (-want +got):\n%s", diff)
			}
		})
	}
	// An override with no args keeps the configured ones.
	empty, _ := protocol.EncodeOverride(protocol.Override{Env: []string{"X=1"}})
	got, err := MakePlan(cfg, protocol.ParamOverride+"="+empty, "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/usr/bin/app", "-c", "/etc/app.conf"}, got.Argv); diff != "" {
		t.Errorf("argv with an env-only override (-want +got):\n%s", diff)
	}
}

func TestExitEvent(t *testing.T) {
	for _, tc := range []struct {
		ws   syscall.WaitStatus // as wait4 reports it
		want protocol.Event
	}{
		{0, protocol.Event{Kind: protocol.EventExit, Code: 0}},
		{3 << 8, protocol.Event{Kind: protocol.EventExit, Code: 3}},
		{255 << 8, protocol.Event{Kind: protocol.EventExit, Code: 255}},
		{syscall.WaitStatus(unix.SIGSEGV), protocol.Event{Kind: protocol.EventExit, Code: 139, Signal: "SIGSEGV"}},
		{syscall.WaitStatus(unix.SIGKILL), protocol.Event{Kind: protocol.EventExit, Code: 137, Signal: "SIGKILL"}},
		{syscall.WaitStatus(unix.SIGABRT) | 0x80, protocol.Event{Kind: protocol.EventExit, Code: 134, Signal: "SIGABRT"}}, // core dumped
		{syscall.WaitStatus(unix.SIGTERM), protocol.Event{Kind: protocol.EventExit, Code: 143, Signal: "SIGTERM"}},
	} {
		if got := ExitEvent(tc.ws); got != tc.want {
			t.Errorf("ExitEvent(%#x) = %+v, want %+v", int(tc.ws), got, tc.want)
		}
	}
	if got := SignalName(syscall.Signal(40)); got != "SIG40" {
		t.Errorf("SignalName(40) = %q, want SIG40", got)
	}
	if got := SignalName(unix.SIGPIPE); got != "SIGPIPE" {
		t.Errorf("SignalName(SIGPIPE) = %q, want SIGPIPE", got)
	}
}

func TestExitEventFromRealProcess(t *testing.T) {
	for _, tc := range []struct {
		script, want string
	}{
		{"exit 7", "exit code=7"},
		{"kill -SEGV $$", "exit signal=SIGSEGV code=139"},
	} {
		cmd := exec.Command("/bin/sh", "-c", tc.script)
		cmd.Run()
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if got := ExitEvent(ws).Format(); !strings.Contains(got, tc.want) {
			t.Errorf("sh -c %q: marker %q, want %q in it", tc.script, got, tc.want)
		}
	}
}

func TestRlimitResource(t *testing.T) {
	for name, want := range map[string]int{"NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_CORE": unix.RLIMIT_CORE, "nproc": unix.RLIMIT_NPROC, "MEMLOCK": unix.RLIMIT_MEMLOCK} {
		got, err := RlimitResource(name)
		if err != nil || got != want {
			t.Errorf("RlimitResource(%q) = %d, %v; want %d", name, got, err, want)
		}
	}
	if _, err := RlimitResource("FILES"); err == nil {
		t.Error("RlimitResource(FILES) succeeded, want an error")
	}
}

func TestMountOptions(t *testing.T) {
	for _, tc := range []struct {
		in    string
		flags uintptr
		data  string
	}{
		{"", 0, ""},
		{"ro,nosuid,size=10m,mode=0755", unix.MS_RDONLY | unix.MS_NOSUID, "size=10m,mode=0755"},
		{"rw,noatime", unix.MS_NOATIME, ""},
		{"rbind", unix.MS_BIND | unix.MS_REC, ""},
	} {
		flags, data := MountOptions(tc.in)
		if flags != tc.flags || data != tc.data {
			t.Errorf("MountOptions(%q) = %#x, %q; want %#x, %q", tc.in, flags, data, tc.flags, tc.data)
		}
	}
}

func TestNetmaskAndRtentry(t *testing.T) {
	for bits, want := range map[int][4]byte{0: {}, 8: {255, 0, 0, 0}, 24: {255, 255, 255, 0}, 23: {255, 255, 254, 0}, 32: {255, 255, 255, 255}} {
		if got := netmask(bits); got != want {
			t.Errorf("netmask(%d) = %v, want %v", bits, got, want)
		}
	}
	// struct rtentry is 120 bytes on x86-64 with rt_dev at offset 88.
	var rt rtentry
	if size := unsafe.Sizeof(rt); size != 120 {
		t.Errorf("sizeof(rtentry) = %d, want 120", size)
	}
	if off := unsafe.Offsetof(rt.dev); off != 88 {
		t.Errorf("offsetof(rtentry.dev) = %d, want 88", off)
	}
	if off := unsafe.Offsetof(rt.flags); off != 56 {
		t.Errorf("offsetof(rtentry.flags) = %d, want 56", off)
	}
}

// TestMainRefusesOutsideGuest runs Main in a child process: not being PID
// 1, it must exit at once without mounting or rebooting anything.
func TestMainRefusesOutsideGuest(t *testing.T) {
	if os.Getenv("GUESTINIT_TEST_MAIN") == "1" {
		Main()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainRefusesOutsideGuest$")
	cmd.Env = append(os.Environ(), "GUESTINIT_TEST_MAIN=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("Main outside a guest: %v, want exit status 2\n%s", err, out)
	}
	if !strings.Contains(string(out), "only as PID 1") {
		t.Errorf("Main outside a guest printed %q, want it to say it runs only as PID 1", out)
	}
}

// TestImports keeps the init free of bespoke's host-side code: outside the
// standard library it may use only golang.org/x/sys/unix and the protocol.
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/bespoke-os/bespoke/cmd/bespoke-init").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	allowed := map[string]bool{
		"golang.org/x/sys/unix":                                     true,
		"github.com/bespoke-os/bespoke/internal/guestinit":          true,
		"github.com/bespoke-os/bespoke/internal/guestinit/protocol": true,
		"github.com/bespoke-os/bespoke/internal/guestinit/lite":     true,
		"github.com/bespoke-os/bespoke/cmd/bespoke-init":            true,
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("the guest init depends on %s, want only the standard library, x/sys/unix, the protocol and lite", p)
		}
	}
}

// TestLinked keeps the init small: none of the code of the packages lite
// stands in for is linked into it (their package init may be: the
// protocol imports compress/gzip for the host's side of blobs).
func TestLinked(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	bin := filepath.Join(t.TempDir(), "init")
	build := exec.Command(goTool, "build", "-trimpath", "-o", bin, "github.com/bespoke-os/bespoke/cmd/bespoke-init")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(goTool, "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	bad := regexp.MustCompile(`^(fmt|encoding/json|archive/tar|net/netip|os/user)\.|^compress/flate\.NewWriter|^reflect\.Value\.`)
	seen := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		if m := bad.FindString(f[len(f)-1]); m != "" && !seen[m] {
			seen[m] = true
			t.Errorf("the guest init links %s (e.g. %s): use package lite", m, f[len(f)-1])
		}
	}
}

func TestHasEntries(t *testing.T) {
	dir := t.TempDir()
	if hasEntries(dir) {
		t.Errorf("hasEntries(empty dir) = true")
	}
	if err := os.WriteFile(dir+"/prog", nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if !hasEntries(dir) {
		t.Errorf("hasEntries(dir with a file) = false: /tmp would be mounted over the program")
	}
	if hasEntries(dir + "/missing") {
		t.Errorf("hasEntries(missing) = true")
	}
}

func TestMakePlanStopSignal(t *testing.T) {
	cfg := protocol.Config{Name: "app", Path: "/usr/sbin/nginx", StopSignal: "SIGQUIT", StopTimeoutSec: 30}
	p, err := MakePlan(cfg, protocol.ParamTrace+"=/.bespoke/t", "")
	if err != nil {
		t.Fatal(err)
	}
	if p.StopSignal != syscall.SIGQUIT {
		t.Errorf("StopSignal = %v, want SIGQUIT", p.StopSignal)
	}
	if got := strings.Join(p.TracerArgv, " "); !strings.Contains(got, "-stop-signal SIGQUIT -grace 30s -- /usr/sbin/nginx") {
		t.Errorf("tracer argv %q does not pass the stop signal and timeout on", got)
	}
	cfg.StopSignal = "SIGBOGUS"
	if _, err := MakePlan(cfg, "", ""); err == nil || !strings.Contains(err.Error(), "SIGBOGUS") {
		t.Errorf("unknown stop signal: %v, want an error naming it", err)
	}
}
