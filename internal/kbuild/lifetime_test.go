package kbuild

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/ksrc"
)

// helperEnv makes the test binary act as bespoke building a kernel with
// the make found in PATH (for the kill -9 test): its value is the cache
// dir.
const helperEnv = "BESPOKE_KBUILD_TEST_BUILD"

func TestMain(m *testing.M) {
	if cache := os.Getenv(helperEnv); cache != "" {
		_, err := Build(context.Background(), Options{
			Tree: &ksrc.Tree{Dir: "/nonexistent/linux", Version: "6.12.117", ID: "6.12.117-abcdef"}, Config: []byte(baseConfig),
			OutDir: filepath.Join(cache, "out"), CacheDir: cache, Jobs: 1, CC: "gcc", Toolchain: &testToolchain,
		})
		fmt.Fprintln(os.Stderr, "helper: Build returned:", err)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// fakeMakeSleeps stands in for make: olddefconfig succeeds, the build
// starts a child that sleeps (a compiler that outlives make) and waits.
// It writes the pids of both into $STATE.
const fakeMakeSleeps = `#!/bin/sh
case "$*" in *olddefconfig*) exit 0;; esac
sleep 60 &
echo $! > "$STATE/child.pid"
echo $$ > "$STATE/make.pid"
wait
`

// TestKilledBuildStopsMake: when bespoke is killed (SIGKILL, no chance to
// clean up), make goes at once, and the work dir stays locked while any
// process of the build (a compiler make started) still runs in it.
func TestKilledBuildStopsMake(t *testing.T) {
	dir := t.TempDir()
	cache, state, bin := filepath.Join(dir, "cache"), filepath.Join(dir, "state"), filepath.Join(dir, "bin")
	for _, d := range []string{cache, state, bin} {
		os.MkdirAll(d, 0o755)
	}
	if err := os.WriteFile(filepath.Join(bin, "make"), []byte(fakeMakeSleeps), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+cache, "STATE="+state, "PATH="+bin+":"+os.Getenv("PATH"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	makePid := waitPid(t, filepath.Join(state, "make.pid"))
	childPid := waitPid(t, filepath.Join(state, "child.pid"))
	defer syscall.Kill(makePid, syscall.SIGKILL)
	defer syscall.Kill(childPid, syscall.SIGKILL)
	// Let the Go runtime start more threads; the one that forked make
	// must stay alive, or make would die while bespoke runs.
	time.Sleep(200 * time.Millisecond)
	if !alive(makePid) {
		t.Fatalf("make %d died while bespoke runs; output:\n%s", makePid, out.String())
	}
	locks, _ := filepath.Glob(filepath.Join(cache, "kbuild", "work-*.lock"))
	if len(locks) != 1 {
		t.Fatalf("work dir locks %q, want one", locks)
	}

	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(2 * time.Second)
	for alive(makePid) {
		if time.Now().After(deadline) {
			t.Fatalf("make %d still runs 2s after bespoke was killed", makePid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !alive(childPid) {
		t.Fatalf("make's child %d is gone: the test needs it to outlive make", childPid)
	}
	if free(t, locks[0]) {
		t.Errorf("work dir lock %s free while a process of the build (pid %d) still runs", locks[0], childPid)
	}
	syscall.Kill(childPid, syscall.SIGKILL)
	deadline = time.Now().Add(2 * time.Second)
	for alive(childPid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d survives SIGKILL", childPid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !free(t, locks[0]) {
		t.Errorf("work dir lock %s still held after every process of the build ended", locks[0])
	}
}

// free reports whether the flock on path can be taken (and releases it).
func free(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err != nil && !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatal(err)
	}
	return err == nil
}

func waitPid(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fake make never wrote %s", path)
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
