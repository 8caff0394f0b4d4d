package child

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestShellExitCode(t *testing.T) {
	var out bytes.Buffer
	code, err := Shell(context.Background(), "echo out; echo err >&2; exit 7", 0, &out)
	if code != 7 || err != nil || out.String() != "out\nerr\n" {
		t.Errorf("Shell = %d, %v, output %q; want 7, nil, both streams", code, err, out.String())
	}
}

// TestShellOutputHeld: a process the shell started in a session of its
// own (out of reach of the group kill) that keeps the output open makes
// Shell return WaitDelay after the shell's exit, with an error that says
// why.
func TestShellOutputHeld(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	t0 := time.Now()
	code, err := Shell(context.Background(), "setsid sh -c 'echo $$ > "+pidFile+".tmp; mv "+pidFile+".tmp "+pidFile+"; exec sleep 1000' & "+
		"while [ ! -e "+pidFile+" ]; do sleep 0.01; done", 0, &bytes.Buffer{})
	if b, rerr := os.ReadFile(pidFile); rerr == nil {
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if code != 0 || err == nil || !strings.Contains(err.Error(), "its output stayed open") {
		t.Errorf("Shell = %d, %v; want 0 and an error about the output", code, err)
	}
	if d := time.Since(t0); d > WaitDelay+2*time.Second {
		t.Errorf("Shell returned after %s", d)
	}
}

// TestInGroupCancel: cancelling the context of a command run InGroup kills
// what it started too (a setup command's server), not its shell alone.
func TestInGroupCancel(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "sh", "-c", "sleep 1000 & echo $! > "+pidFile+"; wait")
	InGroup(cmd)
	done := make(chan error, 1)
	go func() { done <- Run(cmd) }()
	var pid int
	for i := 0; i < 200 && pid == 0; i++ {
		time.Sleep(10 * time.Millisecond)
		if b, err := os.ReadFile(pidFile); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
	}
	if pid == 0 {
		t.Fatal("the command did not start its child")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the cancel")
	}
	time.Sleep(100 * time.Millisecond)
	if alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the command's child %d still runs after the cancel", pid)
	}
}

// alive reports whether pid runs (a zombie waiting for whoever reaps
// orphans does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
