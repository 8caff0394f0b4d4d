package image_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/testenv"
)

// workloadHelperEnv makes the test binary run TestRunWorkloadParentKilled's
// helper: a process that runs a workload (the env var's value) with
// RunWorkload, as bespoke verify does.
const workloadHelperEnv = "BESPOKE_IMAGE_TEST_WORKLOAD"

// readPids waits for the space-separated pids a workload wrote to path,
// and kills them when t ends.
func readPids(t *testing.T, path string, n int) []int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if f := strings.Fields(string(b)); err == nil && len(f) == n {
			pids := make([]int, n)
			for i, s := range f {
				pids[i], _ = strconv.Atoi(s)
				pid := pids[i]
				t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
			}
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workload never wrote %d pids to %s", n, path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// running reports whether pid runs (a zombie does not).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, state, _ := strings.Cut(string(stat[bytes.LastIndexByte(stat, ')'):]), " ")
	return !strings.HasPrefix(state, "Z")
}

// checkEnds fails t unless pid ends within 2s.
func checkEnds(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for running(pid) {
		if time.Now().After(deadline) {
			t.Errorf("%s %d still runs after 2s", what, pid)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunWorkloadParentKilled: when the process running RunWorkload is
// killed with SIGKILL (bespoke verify killed), the workload's shell goes
// with it.
func TestRunWorkloadParentKilled(t *testing.T) {
	if w := os.Getenv(workloadHelperEnv); w != "" {
		wl, err := image.RunWorkload(context.Background(), w, 0, io.Discard)
		t.Fatalf("RunWorkload returned %+v, %v; want it killed first", wl, err)
	}
	pidFile := filepath.Join(t.TempDir(), "pids")
	workload := fmt.Sprintf("echo $$ > %[1]s.tmp; sleep 1000 & echo $! >> %[1]s.tmp; mv %[1]s.tmp %[1]s; wait", pidFile)
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunWorkloadParentKilled$")
	cmd.Env = append(os.Environ(), workloadHelperEnv+"="+workload)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// The sleep is the shell's child: Pdeathsig does not reach it (it
	// is killed when t ends).
	sh := readPids(t, pidFile, 2)[0]
	// Let the Go runtime start more threads: the one that forked the
	// shell must stay (runtime.LockOSThread) or the shell dies early.
	time.Sleep(200 * time.Millisecond)
	if !running(sh) {
		t.Fatalf("the workload's shell %d died while its parent runs; output:\n%s", sh, out.String())
	}
	cmd.Process.Kill()
	cmd.Wait()
	checkEnds(t, sh, "with its parent killed, the workload's shell")
}

// TestRunWorkloadLeftChild: a workload whose shell exits while a child it
// started still holds its output ends with its shell: RunWorkload returns
// at once, and the child is killed.
func TestRunWorkloadLeftChild(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	done := make(chan error, 1)
	var wl *image.Workload
	go func() {
		var err error
		wl, err = image.RunWorkload(context.Background(), "sleep 1000 & echo $! > "+pidFile+"; echo started", 0, io.Discard)
		done <- err
	}()
	child := readPids(t, pidFile, 1)[0]
	select {
	case err := <-done:
		if err != nil || wl.ExitCode != 0 || !strings.Contains(wl.Output, "started") {
			t.Errorf("RunWorkload = %+v, %v; want exit 0 and the output", wl, err)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("RunWorkload did not return within 4s of its shell's exit")
	}
	checkEnds(t, child, "the workload's child")
}

// TestRunWorkloadTimeout: a workload that outlives its timeout is killed,
// with what it started, and the error says so.
func TestRunWorkloadTimeout(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	t0 := time.Now()
	wl, err := image.RunWorkload(context.Background(), "sleep 1000 & echo $! > "+pidFile+"; wait", 300*time.Millisecond, io.Discard)
	if err == nil || err.Error() != "the workload did not finish within 300ms" {
		t.Fatalf("RunWorkload = %+v, %v; want a timeout error", wl, err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("RunWorkload returned after %s", d)
	}
	checkEnds(t, readPids(t, pidFile, 1)[0], "the workload's child")
}

// TestBuildWorkloadTimeout: the spec's workload_timeout bounds the
// workload while tracing, as it does against the image.
func TestBuildWorkloadTimeout(t *testing.T) {
	testenv.Full(t)
	dir := t.TempDir()
	sp, err := spec.Parse(filepath.Join(dir, "bespoke.yaml"), []byte(`name: slow
cmd: sh -c 'echo READY; exec sleep 1000'
ready: log:READY
workload: sleep 1000
workload_timeout: 1s
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := image.Build(ctx, image.Options{Spec: sp, Out: filepath.Join(dir, "slow.image"), CacheDir: filepath.Join(dir, "cache"), NoBoot: true})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "the workload did not finish within 1s") {
			t.Fatalf("Build: %v; want a workload timeout error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Build still runs 5s after it started, with a workload_timeout of 1s")
	}
}
