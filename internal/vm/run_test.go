package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
)

// helperEnv makes the test binary act as a program that calls Run (for
// the kill -9 test): its value is the image directory.
const helperEnv = "BESPOKE_VM_TEST_RUN"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		_, err := Run(context.Background(), Config{ImageDir: dir, Accel: "tcg", QEMU: os.Getenv("BESPOKE_VM_TEST_QEMU")})
		fmt.Fprintln(os.Stderr, "helper: Run returned:", err)
		os.Exit(3)
	}
	// Command lines must not depend on this host's clock.
	hostTSCKHz = func() int { return 2000000 }
	os.Exit(m.Run())
}

// writeImageDir writes an image directory with empty kernel and initramfs
// files (the fake QEMU does not read them).
func writeImageDir(t *testing.T, img *Image) string {
	t.Helper()
	dir := t.TempDir()
	if img == nil {
		img = testImage(TargetMicrovm)
	}
	if err := img.Write(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{img.Kernel, img.Initramfs} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fakeQEMU writes a shell script that stands in for qemu-system-x86_64.
func fakeQEMU(t *testing.T, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qemu-system-x86_64")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunMarkerStream(t *testing.T) {
	tests := []struct {
		name     string
		script   string
		wantCode int
		wantErr  error  // errors.Is; nil: no error
		wantMsg  string // in the error
		wantInit bool   // *InitError
	}{
		{
			name: "exit 3",
			script: `echo "Linux version 6.12.117"; sleep 0.05
echo "bespoke-init: started uptime=0.500"
echo "bespoke-init: exec pid=2 uptime=0.520"
echo "hello from the program"
echo "bespoke-init: exit code=3 uptime=0.700"
`,
			wantCode: 3,
		},
		{
			name: "killed by a signal",
			script: `echo "bespoke-init: started uptime=0.5"; echo "bespoke-init: exec pid=2 uptime=0.52"
printf 'bespoke-init: exit signal=SIGSEGV code=139 uptime=0.7\r\n'`,
			wantCode: 139,
		},
		{
			name: "init error",
			script: `echo "bespoke-init: started uptime=0.5"
echo "mounting /proc"
echo 'bespoke-init: error uptime=0.6 msg="exec /usr/bin/redis-server: no such file or directory"'`,
			wantCode: protocol.ExitCodeInitError,
			wantInit: true,
			wantMsg:  "guest init failed: exec /usr/bin/redis-server: no such file or directory\nlast console lines:\n  | bespoke-init: started uptime=0.5\n  | mounting /proc\n",
		},
		{
			name: "kernel panic",
			script: `echo "Linux version 6.12.117"
echo "Kernel panic - not syncing: No working init found."`,
			wantCode: -1,
			wantErr:  ErrNoExitStatus,
			wantMsg:  "  | Kernel panic - not syncing: No working init found.\nconsole log: ",
		},
		{
			name: "qemu killed mid-run",
			script: `echo "bespoke-init: started uptime=0.5"; echo "bespoke-init: exec pid=2 uptime=0.52"
kill -9 $$`,
			wantCode: -1,
			wantErr:  ErrNoExitStatus,
			wantMsg:  "QEMU: signal: killed",
		},
		{
			name:     "qemu fails",
			script:   `echo "qemu-system-x86_64: -netdev user,id=n0,hostfwd=tcp:127.0.0.1:8080-:80: Could not set up host forwarding rule" >&2; exit 1`,
			wantCode: -1,
			wantErr:  ErrNoExitStatus,
			wantMsg:  "QEMU: exit status 1: qemu-system-x86_64: -netdev user,id=n0,hostfwd=tcp:127.0.0.1:8080-:80: Could not set up host forwarding rule",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeImageDir(t, nil)
			var console, status bytes.Buffer
			res, err := Run(context.Background(), Config{ImageDir: dir, Accel: "tcg", QEMU: fakeQEMU(t, tt.script),
				Console: &console, Status: &status, Timeout: 10 * time.Second})
			if res == nil {
				t.Fatalf("Run: no result: %v", err)
			}
			if res.ExitCode != tt.wantCode {
				t.Errorf("ExitCode = %d, want %d (err %v)", res.ExitCode, tt.wantCode, err)
			}
			var ie *InitError
			switch {
			case tt.wantInit:
				if !errors.As(err, &ie) {
					t.Errorf("error = %v, want an *InitError", err)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("error = %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("Run: %v", err)
			}
			if tt.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tt.wantMsg)) {
				t.Errorf("error = %v, want one containing %q", err, tt.wantMsg)
			}
			if err != nil && !strings.Contains(err.Error(), res.LogPath) {
				t.Errorf("error = %v, want it to name the console log %s", err, res.LogPath)
			}
			logged, _ := os.ReadFile(filepath.Join(dir, "console.log"))
			if res.LogPath != filepath.Join(dir, "console.log") || !bytes.Equal(logged, console.Bytes()) {
				t.Errorf("console log %s holds %q, want what the console showed: %q", res.LogPath, logged, console.String())
			}
		})
	}
}

func TestRunTiming(t *testing.T) {
	dir := writeImageDir(t, nil)
	var status bytes.Buffer
	res, err := Run(context.Background(), Config{ImageDir: dir, Accel: "tcg", Status: &status, Timeout: 10 * time.Second,
		QEMU: fakeQEMU(t, `sleep 0.2; echo "Linux version 6.12.117"; sleep 0.3
echo "bespoke-init: started uptime=0.620"
echo "bespoke-init: exec pid=2 uptime=0.650"; sleep 0.1
echo "bespoke-init: exit code=0 uptime=0.700"`)})
	if err != nil {
		t.Fatal(err)
	}
	b := res.Boot
	if b.Kernel < 150*time.Millisecond || b.Init < b.Kernel+250*time.Millisecond || b.Exec < b.Init || b.Exit < b.Exec || b.Total < b.Exit {
		t.Errorf("timing kernel %v, init %v, exec %v, exit %v, total %v: want kernel >= 0.2s, /init 0.3s later, then exec <= exit <= total",
			b.Kernel, b.Init, b.Exec, b.Exit, b.Total)
	}
	if b.GuestInit != 620*time.Millisecond || b.GuestExit != 700*time.Millisecond {
		t.Errorf("guest times %v, %v, want 620ms, 700ms", b.GuestInit, b.GuestExit)
	}
	if b.ReadyBy != "exec" {
		t.Errorf("ReadyBy = %q, want exec (no ports, no ready condition)", b.ReadyBy)
	}
	if !strings.Contains(status.String(), "bespoke: boot: kernel 0.") || !strings.Contains(status.String(), "(guest 0.62s)") {
		t.Errorf("status %q, want the boot times", status.String())
	}
}

func TestConsoleChunks(t *testing.T) {
	stream := "Linux version 6.12\r\n" + strings.Repeat("noise\n", 30) + "bespoke-init: started uptime=1.0\nbespoke-init: exec pid=7 uptime=1.1\nbespoke-init: exit code=3 uptime=2.0\nafter"
	c := newConsole(time.Now(), nil, nil)
	for i := 0; i < len(stream); i += 7 { // odd chunks split lines and markers
		c.Write([]byte(stream[i:min(i+7, len(stream))]))
	}
	c.Close()
	f := c.Final()
	if f == nil || f.Kind != protocol.EventExit || f.Code != 3 {
		t.Fatalf("final event %+v, want exit code 3", f)
	}
	tail := c.Tail()
	if len(tail) != tailLines || tail[len(tail)-1] != "after" || tail[len(tail)-5] != "noise" {
		t.Errorf("tail = %q, want the last %d lines ending in noise, 3 markers, after", tail, tailLines)
	}
	var tm Timing
	c.timing(&tm)
	if tm.Kernel == 0 || tm.GuestExec != 1100*time.Millisecond {
		t.Errorf("timing %+v, want kernel output seen and guest exec 1.1s", tm)
	}
}

// listen returns a listener on 127.0.0.1 whose accepted connections are
// handled by serve.
func listen(t *testing.T, serve func(net.Conn)) (net.Listener, int) {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return l, l.Addr().(*net.TCPAddr).Port
}

func TestProbeTCP(t *testing.T) {
	hold := func(c net.Conn) { time.Sleep(5 * time.Second); c.Close() }
	banner := func(c net.Conn) { c.Write([]byte("+OK\r\n")); time.Sleep(5 * time.Second); c.Close() }
	slirp := func(c net.Conn) { time.Sleep(5 * time.Millisecond); c.Close() } // nothing listens in the guest
	tests := []struct {
		name  string
		serve func(net.Conn)
		ready bool
	}{
		{"program accepts and waits", hold, true},
		{"program sends a banner", banner, true},
		{"forwarder accepts then closes", slirp, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, port := listen(t, tt.serve)
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			start := time.Now()
			at, err := probeTCP(ctx, fmt.Sprintf("127.0.0.1:%d", port))
			if got := err == nil; got != tt.ready {
				t.Errorf("ready = %v (err %v), want %v", got, err, tt.ready)
			}
			if d := at.Sub(start); tt.ready && d > readyHold/2 {
				t.Errorf("ready time %v after the start, want the connection's time, not the end of the %v hold", d, readyHold)
			}
			if tt.ready && time.Since(start) > time.Second {
				t.Errorf("ready after %v, want well under 1s", time.Since(start))
			}
		})
	}
	t.Run("nothing listens", func(t *testing.T) {
		l, _ := net.Listen("tcp4", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if _, err := probeTCP(ctx, addr); err == nil {
			t.Error("ready with nothing listening, want not ready")
		}
	})
	t.Run("closes first then accepts", func(t *testing.T) {
		var n atomic.Int32
		_, port := listen(t, func(c net.Conn) {
			if n.Add(1) <= 3 {
				c.Close()
				return
			}
			hold(c)
		})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if _, err := probeTCP(ctx, fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
			t.Errorf("not ready: %v, want ready once the program listens", err)
		}
	})
}

// TestRunOnReady: the guest program "listens" on a forwarded port (here a
// host listener stands in for QEMU's forward); OnReady runs with the port
// map, then Run stops QEMU.
func TestRunOnReady(t *testing.T) {
	_, port := listen(t, func(c net.Conn) { time.Sleep(5 * time.Second); c.Close() })
	checkHostPort = func(PortMap) error { return nil } // the listener is the forward
	defer func() { checkHostPort = portFree }()
	img := testImage(TargetMicrovm)
	img.Ports = []Port{{Guest: 6379}}
	dir := writeImageDir(t, img)
	pidFile := filepath.Join(t.TempDir(), "pid")
	var gotPorts map[int]int
	var status bytes.Buffer
	res, err := Run(context.Background(), Config{
		ImageDir: dir, Accel: "tcg", Status: &status, Timeout: 10 * time.Second,
		Ports: []PortMap{{Host: port, Guest: 6379, Proto: "tcp"}},
		QEMU: fakeQEMU(t, `echo $$ > `+pidFile+`
echo "bespoke-init: started uptime=0.5"; sleep 0.2; echo "bespoke-init: exec pid=2 uptime=0.6"
exec sleep 30`),
		OnReady: func(ctx context.Context, ports map[int]int) error {
			gotPorts = ports
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if gotPorts[6379] != port {
		t.Errorf("OnReady ports %v, want 6379 -> %d", gotPorts, port)
	}
	if !res.Stopped || res.ExitCode != -1 {
		t.Errorf("Stopped %v, ExitCode %d, want stopped by bespoke, no exit code", res.Stopped, res.ExitCode)
	}
	if res.Boot.ReadyBy != "tcp:6379" || res.Boot.Ready < res.Boot.Exec {
		t.Errorf("ready %v by %q (exec at %v), want by tcp:6379 after exec", res.Boot.Ready, res.Boot.ReadyBy, res.Boot.Exec)
	}
	if !strings.Contains(status.String(), "ready ") {
		t.Errorf("status %q, want a ready time", status.String())
	}
	assertGone(t, pidFile)

	// An error from OnReady is Run's error.
	boom := errors.New("workload failed")
	_, err = Run(context.Background(), Config{
		ImageDir: dir, Accel: "tcg", Timeout: 10 * time.Second,
		Ports:   []PortMap{{Host: port, Guest: 6379, Proto: "tcp"}},
		QEMU:    fakeQEMU(t, `echo "bespoke-init: exec pid=2 uptime=0.6"; exec sleep 30`),
		OnReady: func(ctx context.Context, ports map[int]int) error { return boom },
	})
	if !errors.Is(err, boom) {
		t.Errorf("Run error = %v, want the OnReady error", err)
	}
}

func TestRunReadyLog(t *testing.T) {
	img := testImage(TargetPC)
	img.Ready = "log:Ready to accept connections"
	dir := writeImageDir(t, img)
	called := false
	res, err := Run(context.Background(), Config{
		ImageDir: dir, Accel: "tcg", Timeout: 10 * time.Second,
		QEMU:    fakeQEMU(t, `echo "bespoke-init: exec pid=2 uptime=0.6"; sleep 0.3; echo "* Ready to accept connections tcp"; exec sleep 30`),
		OnReady: func(ctx context.Context, ports map[int]int) error { called = true; return nil },
	})
	if err != nil || !called || res.Boot.ReadyBy != "log" || res.Boot.Ready < res.Boot.Exec+250*time.Millisecond {
		t.Errorf("err %v, OnReady called %v, ready %v by %q (exec %v), want ready by log 0.3s after exec", err, called, res.Boot.Ready, res.Boot.ReadyBy, res.Boot.Exec)
	}
}

func TestRunStops(t *testing.T) {
	defer func(d time.Duration) { stopGrace = d }(stopGrace)
	stopGrace = 300 * time.Millisecond
	dir := writeImageDir(t, nil)
	tests := []struct {
		name    string
		script  string
		timeout time.Duration
		cancel  time.Duration
		wantErr error
	}{
		{"timeout", `echo "bespoke-init: started uptime=0.5"; exec sleep 30`, 300 * time.Millisecond, 0, ErrTimeout},
		{"cancelled", `exec sleep 30`, 0, 300 * time.Millisecond, context.Canceled},
		{"SIGTERM ignored", `trap '' TERM; exec sleep 30`, 300 * time.Millisecond, 0, ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel > 0 {
				time.AfterFunc(tt.cancel, cancel)
			}
			start := time.Now()
			res, err := Run(ctx, Config{ImageDir: dir, Accel: "tcg", Timeout: tt.timeout,
				QEMU: fakeQEMU(t, "echo $$ > "+pidFile+"\n"+tt.script)})
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), res.LogPath) {
				t.Errorf("error %q does not name the console log", err)
			}
			if !res.Stopped {
				t.Error("Stopped = false, want true")
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Run took %v, want it to stop QEMU at once", d)
			}
			assertGone(t, pidFile)
		})
	}
}

func TestRunReadOnlyImageDir(t *testing.T) {
	dir := writeImageDir(t, nil)
	logDir := filepath.Join(dir, "console.log")
	os.Mkdir(logDir, 0o755) // console.log cannot be created as a file
	res, err := Run(context.Background(), Config{ImageDir: dir, Accel: "tcg", Timeout: 10 * time.Second,
		QEMU: fakeQEMU(t, `echo "bespoke-init: exit code=0 uptime=0.7"`)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.LogPath, os.TempDir()) {
		t.Errorf("LogPath = %s, want one in a temporary directory", res.LogPath)
	}
	os.RemoveAll(filepath.Dir(res.LogPath))
}

// TestNoOrphanAfterKill9 kills -9 a process that runs Run and checks
// that QEMU (a fake that sleeps) goes with it.
func TestNoOrphanAfterKill9(t *testing.T) {
	dir := writeImageDir(t, nil)
	pidFile := filepath.Join(t.TempDir(), "pid")
	qemu := fakeQEMU(t, "echo $$ > "+pidFile+"\nexec sleep 30")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir, "BESPOKE_VM_TEST_QEMU="+qemu)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := waitPid(t, pidFile)
	// Let the Go runtime start more threads; the one that forked QEMU
	// must stay alive (runtime.LockOSThread) or QEMU would die early.
	time.Sleep(200 * time.Millisecond)
	if !alive(pid) {
		t.Fatalf("QEMU %d died while bespoke runs; output:\n%s", pid, out.String())
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(2 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("QEMU %d still runs 2s after bespoke was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitPid(t *testing.T, pidFile string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(pidFile)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatal("the fake QEMU never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func assertGone(t *testing.T, pidFile string) {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the fake QEMU never started: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("QEMU %d still runs after Run returned", pid)
	}
}

// TestRunStopGuest: with StopGuest, bespoke writes the stop request to the
// guest's console when OnReady returns and waits for the guest to end; a
// guest that ignores it is stopped after the stop timeout and the wait.
func TestRunStopGuest(t *testing.T) {
	dir := writeImageDir(t, nil)
	got := filepath.Join(t.TempDir(), "request")
	res, err := Run(context.Background(), Config{
		ImageDir: dir, Accel: "tcg", Timeout: 20 * time.Second, StopGuest: true,
		QEMU: fakeQEMU(t, `echo "bespoke-init: exec pid=2 uptime=0.6"
read line; printf '%s' "$line" > `+got+`
echo "bespoke-init: exit code=0 uptime=1.5"`),
		OnReady: func(ctx context.Context, ports map[int]int) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.StopRequested || !res.Stopped || res.ExitCode != 0 {
		t.Errorf("StopRequested %v, Stopped %v, ExitCode %d; want a requested stop with exit 0", res.StopRequested, res.Stopped, res.ExitCode)
	}
	if b, _ := os.ReadFile(got); string(b) != protocol.StopRequest {
		t.Errorf("the guest read %q, want the stop request %q", b, protocol.StopRequest)
	}

	start := time.Now()
	_, err = Run(context.Background(), Config{
		ImageDir: dir, Accel: "tcg", Timeout: 20 * time.Second, StopGuest: true,
		StopTimeout: 200 * time.Millisecond, StopWait: 200 * time.Millisecond,
		QEMU:    fakeQEMU(t, `echo "bespoke-init: exec pid=2 uptime=0.6"; exec sleep 30`),
		OnReady: func(ctx context.Context, ports map[int]int) error { return nil },
	})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "did not stop") {
		t.Errorf("a guest that ignores the stop request: %v, want a timeout that says the program did not stop", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v, want the stop timeout and wait (0.4s) and QEMU's stop", d)
	}
}

// TestConsoleBlobs: blob lines are collected, not kept as console lines.
func TestConsoleBlobs(t *testing.T) {
	var b protocol.Blobs
	c := newConsole(time.Now(), nil, &b)
	c.Write([]byte("kernel says hi\n"))
	if err := protocol.WriteBlob(c, "x.json", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("bespoke-init: exit code=0 uptime=2\n"))
	data, err := b.Get("x.json")
	if err != nil || string(data) != `{"a":1}` {
		t.Errorf("blob = %q, %v; want the data written", data, err)
	}
	for _, l := range c.Tail() {
		if protocol.IsBlobLine(l) {
			t.Errorf("console tail holds a blob line: %q", l)
		}
	}
	if len(c.Tail()) != 2 {
		t.Errorf("tail %q, want the kernel line and the exit marker", c.Tail())
	}
}

// TestRunReadyRequests: a ready request is written to the guest console
// and acked before OnReady runs.
func TestRunReadyRequests(t *testing.T) {
	dir := writeImageDir(t, nil)
	var ranAfterAck bool
	res, err := Run(context.Background(), Config{
		ImageDir: dir, Accel: "tcg", Timeout: 20 * time.Second, StopGuest: true,
		ReadyRequests: []Request{{Line: protocol.GcovResetRequest, Ack: protocol.GcovReset}},
		QEMU: fakeQEMU(t, `echo "bespoke-init: exec pid=2 uptime=0.6"
read line; case "$line" in *bespoke-gcov-reset*) sleep 0.3; echo 'bespoke-init: ack uptime=1.0 msg="gcov-reset"';; esac
read line; echo "bespoke-init: exit code=0 uptime=1.5"`),
		OnReady: func(ctx context.Context, ports map[int]int) error {
			ranAfterAck = true
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !ranAfterAck || res.ExitCode != 0 {
		t.Errorf("OnReady ran %v, exit %d; want OnReady after the ack, then a clean stop", ranAfterAck, res.ExitCode)
	}

	defer func(d time.Duration) { requestTimeout = d }(requestTimeout)
	requestTimeout = 300 * time.Millisecond
	_, err = Run(context.Background(), Config{
		ImageDir: dir, Accel: "tcg", Timeout: 20 * time.Second, StopGuest: true, StopTimeout: 100 * time.Millisecond, StopWait: 100 * time.Millisecond,
		ReadyRequests: []Request{{Line: protocol.GcovResetRequest, Ack: protocol.GcovReset}},
		QEMU:          fakeQEMU(t, `echo "bespoke-init: exec pid=2 uptime=0.6"; exec sleep 30`),
		OnReady:       func(ctx context.Context, ports map[int]int) error { t.Error("OnReady ran without the ack"); return nil },
	})
	if err == nil || !strings.Contains(err.Error(), "did not ack") {
		t.Errorf("no ack: %v, want an error saying the init did not ack", err)
	}
}

// TestRunState: the init's state events reach the Result and the status
// output, one line at start and one when the state directory fills up,
// saying what to do.
func TestRunState(t *testing.T) {
	dir := writeImageDir(t, testImage(TargetMicrovm))
	var status bytes.Buffer
	res, err := Run(context.Background(), Config{
		ImageDir: dir, Accel: "tcg", Timeout: 10 * time.Second, Status: &status,
		QEMU: fakeQEMU(t, `echo "bespoke-init: started uptime=0.5"
echo 'bespoke-init: state uptime=0.55 msg="memory 134217728 133169152 /var/lib/pg"'
echo "bespoke-init: exec pid=2 uptime=0.6"
echo 'bespoke-init: state-full uptime=9.1 msg="memory 134217728 1048576 /var/lib/pg"'
echo "PANIC: could not write to file: No space left on device"
echo "bespoke-init: exit code=1 uptime=9.5"`),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.StateInfo{Where: protocol.StateMemory, Total: 128 << 20, Free: 127 << 20, Path: "/var/lib/pg"}
	if res.State == nil || *res.State != want || res.StateFull == nil || res.StateFull.Free != 1<<20 {
		t.Errorf("State %+v, StateFull %+v; want %+v and a full one with 1 MiB free", res.State, res.StateFull, want)
	}
	for _, line := range []string{
		"bespoke: state /var/lib/pg: 127.0 MiB free of 128.0 MiB in memory (half the VM's memory: -m gives more, -v FILE:/var/lib/pg a disk)\n",
		"bespoke: the state directory /var/lib/pg is full or nearly: 1.0 MiB free of 128.0 MiB in memory; give the VM more memory (-m) or the state a volume (-v FILE:/var/lib/pg)\n",
	} {
		if !strings.Contains(status.String(), line) {
			t.Errorf("status output lacks %q:\n%s", line, status.String())
		}
	}
}
