//go:build linux && amd64

package trace

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/google/go-cmp/cmp"
)

func hasExec(m *manifest.Manifest, base string) bool {
	for _, e := range m.Execs {
		if filepath.Base(e.Path) == base && e.Result == "found" {
			return true
		}
	}
	return false
}

func findPath(m *manifest.Manifest, p string) *manifest.Path {
	for i := range m.Paths {
		if m.Paths[i].Path == p {
			return &m.Paths[i]
		}
	}
	return nil
}

func TestRunPipeline(t *testing.T) {
	testenv.Full(t)
	counts := map[bool]map[string]int{}
	for _, noSeccomp := range []bool{false, true} {
		name := "seccomp"
		if noSeccomp {
			name = "ptrace-syscall"
		}
		t.Run(name, func(t *testing.T) {
			var out, log bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			m, err := Run(ctx, Options{
				Program: "sh", Args: []string{"-c", "cat /etc/hostname | wc -c"},
				Stdout: &out, Log: &log, NoSeccomp: noSeccomp,
			})
			if err != nil {
				t.Fatalf("Run: %v\nlog:\n%s", err, log.String())
			}
			want, _ := os.ReadFile("/etc/hostname")
			if got := strings.TrimSpace(out.String()); got != strconv.Itoa(len(want)) {
				t.Errorf("program output %q, want %d (the pipeline's own output, passed through)", got, len(want))
			}
			for _, b := range []string{"sh", "cat", "wc"} {
				if !hasExec(m, b) {
					t.Errorf("no successful exec of %s in %+v", b, m.Execs)
				}
			}
			if m.Processes < 3 {
				t.Errorf("Processes = %d, want >= 3", m.Processes)
			}
			if p := findPath(m, "/etc/hostname"); p == nil || p.Result != "found" || !slices.Contains(p.Ops, "open") {
				t.Errorf("/etc/hostname: got %+v, want opened and found", p)
			}
			if m.Exit == nil || m.Exit.Code != 0 || m.Exit.Signal != "" || m.Exit.Stopped {
				t.Errorf("Exit = %+v, want code 0", m.Exit)
			}
			for _, sc := range []string{"execve", "read", "write", "pipe2", "wait4"} {
				if m.Syscall(sc) == nil {
					t.Errorf("syscall %s not recorded", sc)
				}
			}
			if m.Syscall("execve").Count < 3 {
				t.Errorf("execve count %d, want >= 3", m.Syscall("execve").Count)
			}
			counts[noSeccomp] = map[string]int{}
			for _, s := range m.Syscalls {
				counts[noSeccomp][s.Name] = s.Count
			}
			t.Logf("processes %d threads %d syscalls %d paths %d libs %v", m.Processes, m.Threads, len(m.Syscalls), len(m.Paths), m.Libraries)
		})
	}
	// Both tracing modes count the same syscalls. How many signals the
	// shell's SIGCHLD handler returns from depends on when its children
	// end (one delivery for both, or one each: seen in a CI run), so
	// rt_sigreturn is compared for presence only.
	if a, b := counts[true]["rt_sigreturn"], counts[false]["rt_sigreturn"]; (a > 0) != (b > 0) {
		t.Errorf("rt_sigreturn: %d with PTRACE_SYSCALL, %d with seccomp; want it in both or neither", a, b)
	}
	for _, c := range counts {
		delete(c, "rt_sigreturn")
	}
	if diff := cmp.Diff(counts[true], counts[false]); diff != "" {
		t.Errorf("syscall counts differ between PTRACE_SYSCALL and seccomp (-ptrace +seccomp)\n%s", diff)
	}
}

// TestRunAllResults: with AllResults the errors of syscalls the manifest
// otherwise only counts are recorded (kill(2) of no such process: ESRCH).
func TestRunAllResults(t *testing.T) {
	testenv.Full(t)
	for _, all := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var log bytes.Buffer
		m, err := Run(ctx, Options{Program: "sh", Args: []string{"-c", "kill -0 2147483 2>/dev/null; exit 0"}, Log: &log, AllResults: all})
		if err != nil {
			t.Fatalf("Run (AllResults %v): %v\nlog:\n%s", all, err, log.String())
		}
		k := m.Syscall("kill")
		if k == nil || k.Count == 0 {
			t.Fatalf("AllResults %v: kill not counted: %+v", all, m.Syscalls)
		}
		if got, want := k.Errors["ESRCH"] > 0, all; got != want {
			t.Errorf("AllResults %v: kill errors %v, want ESRCH recorded: %v", all, k.Errors, want)
		}
		if e := m.Syscall("exit_group"); e != nil && len(e.Errors) > 0 {
			t.Errorf("AllResults %v: exit_group has errors %v: it does not return", all, e.Errors)
		}
	}
}

func TestRunStops(t *testing.T) {
	testenv.Full(t)
	t.Run("log ready", func(t *testing.T) {
		var out bytes.Buffer
		m, err := Run(context.Background(), Options{
			Program: "sh", Args: []string{"-c", "echo starting; echo 'server READY now'; exec sleep 30"},
			Ready: mustReady(t, "log:READY"), Stdout: &out, Timeout: 20 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		if m.Exit == nil || !m.Exit.Stopped || m.Exit.Signal != "SIGTERM" {
			t.Errorf("Exit = %+v, want stopped by SIGTERM", m.Exit)
		}
		if !strings.Contains(out.String(), "server READY now") {
			t.Errorf("output %q not passed through", out.String())
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t0 := time.Now()
		m, err := Run(context.Background(), Options{Program: "sleep", Args: []string{"30"}, Timeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if m.Exit == nil || !m.Exit.Stopped || time.Since(t0) > 10*time.Second {
			t.Errorf("Exit = %+v after %s, want stopped soon after the timeout", m.Exit, time.Since(t0))
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		m, err := Run(ctx, Options{Program: "sh", Args: []string{"-c", "sleep 30 & sleep 30; wait"}})
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || m != nil {
			t.Fatalf("Run = %v, %v; want no manifest and a context error", m, err)
		}
		out, _ := exec.Command("pgrep", "-P", strconv.Itoa(os.Getpid())).Output()
		if len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("children left: %s", out)
		}
	})
}

// TestRunAsUser: with a Credential the program runs as that user, in both
// modes. The seccomp stub is this test binary, in a build directory only
// root may enter: it starts as root and switches before it execs.
func TestRunAsUser(t *testing.T) {
	testenv.Root(t)
	for _, noSeccomp := range []bool{false, true} {
		var out bytes.Buffer
		m, err := Run(context.Background(), Options{
			Program: "sh", Args: []string{"-c", "id -u; id -g"}, Stdout: &out, NoSeccomp: noSeccomp,
			Credential: &syscall.Credential{Uid: 65534, Gid: 65534},
		})
		if err != nil {
			t.Fatalf("noSeccomp %v: %v", noSeccomp, err)
		}
		if got := strings.Fields(out.String()); len(got) != 2 || got[0] != "65534" || got[1] != "65534" || m.Exit.Code != 0 {
			t.Errorf("noSeccomp %v: id printed %q (exit %+v), want uid and gid 65534", noSeccomp, out.String(), m.Exit)
		}
	}
}
