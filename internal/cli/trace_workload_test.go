package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/testenv"
)

// TestTraceFailedWorkload: bespoke trace fails when the workload fails, as
// bespoke build does; the manifest is written all the same and the error
// says so.
func TestTraceFailedWorkload(t *testing.T) {
	testenv.Full(t)
	out := filepath.Join(t.TempDir(), "m.json")
	code, _, stderr := runTraceCLI(t, "-o", out, "--ready", "log:READY", "--workload", "echo failing; exit 3",
		"--", "sh", "-c", "echo READY; exec sleep 30")
	if code != 1 {
		t.Errorf("exit code %d, want 1; stderr:\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{"bespoke trace: ", "the workload exited with code 3", "manifest written anyway: " + out} {
		if !strings.Contains(last, want) {
			t.Errorf("last line %q, want one containing %q", last, want)
		}
	}
	m, err := manifest.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Workload == nil || m.Workload.ExitCode != 3 || !strings.Contains(m.Workload.Output, "failing") {
		t.Errorf("Workload = %+v, want exit code 3 and its output", m.Workload)
	}
}

// TestTraceInterrupted: bespoke trace interrupted (SIGINT or SIGTERM: its
// context cancelled) while the workload runs returns at once, having
// stopped the workload, even a child that keeps the workload's output
// open, and the traced program.
func TestTraceInterrupted(t *testing.T) {
	testenv.Full(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- Main(ctx, []string{"trace", "-o", filepath.Join(dir, "m.json"), "--ready", "log:READY",
			"--workload", "sleep 1000 & echo $! > " + pidFile + ".tmp; mv " + pidFile + ".tmp " + pidFile + "; wait",
			"--", "sh", "-c", "echo READY; exec sleep 1000"}, strings.NewReader(""), &bytes.Buffer{}, &stderr)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(pidFile)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
			t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the workload never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 130 {
			t.Errorf("exit code %d, want 130; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("bespoke trace still runs 5s after it was interrupted")
	}
	if kids := children(t); len(kids) > 0 {
		t.Errorf("processes left behind: %q", kids)
	}
}
