//go:build linux && amd64

package trace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/testenv"
)

// groupWorkload is a workload whose shell writes its own pid and that of
// a child it waits for, which holds the workload's output open, to the
// file pids (replaced by its path); it never ends by itself.
const groupWorkload = "echo $$ > pids.tmp; sleep 1000 & echo $! >> pids.tmp; mv pids.tmp pids; wait"

// startedPids waits for the pids the workload wrote in dir/pids, and
// kills them when t ends.
func startedPids(t *testing.T, dir string) []int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "pids"))
		if f := strings.Fields(string(b)); err == nil && len(f) == 2 {
			var pids []int
			for _, s := range f {
				pid, _ := strconv.Atoi(s)
				pids = append(pids, pid)
				t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
			}
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatal("the workload never wrote its pids")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ended reports whether pid has ended (a zombie has).
func ended(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	return err != nil || strings.HasPrefix(s[strings.LastIndexByte(s, ')')+1:], " Z")
}

// checkEnded fails t unless every pid ends within 2s.
func checkEnded(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for _, pid := range pids {
		for !ended(pid) {
			if time.Now().After(deadline) {
				t.Errorf("workload process %d still runs", pid)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// inDir runs command in dir (the workload runs in bespoke's directory).
func inDir(dir, command string) string { return "cd " + dir + " && " + command }

// TestRunWorkloadCancel: a cancelled workload is killed with everything
// it started, even a child that keeps its output open, and runWorkload
// returns at once.
func TestRunWorkloadCancel(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := runWorkload(ctx, inDir(dir, groupWorkload), 0, &bytes.Buffer{})
		done <- err
	}()
	pids := startedPids(t, dir)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("runWorkload: %v, want a context.Canceled error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("runWorkload did not return within 5s of the cancel")
	}
	checkEnded(t, pids)
}

// TestRunWorkloadTimeout: a workload that outlives its timeout is killed
// and the error says so.
func TestRunWorkloadTimeout(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Now()
	wl, err := runWorkload(context.Background(), inDir(dir, groupWorkload), 500*time.Millisecond, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "the workload did not finish within 500ms") {
		t.Fatalf("runWorkload = %+v, %v; want a timeout error", wl, err)
	}
	if d := time.Since(t0); d > 4*time.Second {
		t.Errorf("runWorkload returned after %s", d)
	}
	checkEnded(t, startedPids(t, dir))
}

// TestRunCancelDuringWorkload: a trace cancelled (SIGINT or SIGTERM to
// bespoke) while its workload runs returns promptly with an error, having
// killed the workload's process group and the traced program.
func TestRunCancelDuringWorkload(t *testing.T) {
	testenv.Full(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Options{
			Program: "sh", Args: []string{"-c", "echo $$ > " + filepath.Join(dir, "server") + "; echo READY; exec sleep 1000"},
			Ready: mustReady(t, "log:READY"), Workload: inDir(dir, groupWorkload),
		})
		done <- err
	}()
	pids := startedPids(t, dir)
	b, _ := os.ReadFile(filepath.Join(dir, "server"))
	server, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	t.Cleanup(func() { syscall.Kill(server, syscall.SIGKILL) })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v, want a context.Canceled error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of the cancel")
	}
	checkEnded(t, append(pids, server))
}

// TestRunWorkloadTimeoutOption: Options.WorkloadTimeout bounds the
// workload; the trace fails and the program is stopped.
func TestRunWorkloadTimeoutOption(t *testing.T) {
	testenv.Full(t)
	t0 := time.Now()
	m, err := Run(context.Background(), Options{
		Program: "sh", Args: []string{"-c", "echo READY; exec sleep 1000"},
		Ready: mustReady(t, "log:READY"), Workload: "sleep 1000", WorkloadTimeout: time.Second,
	})
	if err == nil || !strings.Contains(err.Error(), "the workload did not finish within 1s") {
		t.Fatalf("Run = %v, %v; want a workload timeout error", m, err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("Run returned after %s", d)
	}
}
