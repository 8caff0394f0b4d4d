package guestinit

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"golang.org/x/sys/unix"
)

// TestSupervise runs supervise in a child process (it reaps every child
// and catches SIGTERM, which a test binary must not do to itself), sends
// that process SIGTERM once the program has started, and reads the exit
// marker.
func TestSupervise(t *testing.T) {
	if script := os.Getenv("GUESTINIT_TEST_SUPERVISE"); script != "" {
		// Orphans are reparented to this process, as they are to PID 1.
		unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
		ev, err := supervise(Plan{
			Path: "/bin/sh", Argv: []string{"/bin/sh", "-c", script}, Dir: "/",
			Env: []string{"PATH=" + DefaultPath}, Uid: os.Getuid(), Gid: os.Getgid(),
		}, 300*time.Millisecond)
		if err != nil {
			fmt.Println("supervise:", err)
			os.Exit(1)
		}
		// Every child, the orphaned ones included, has been reaped.
		if os.Getenv("GUESTINIT_TEST_REAPED") != "" {
			if _, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); err != unix.ECHILD {
				fmt.Println("children left unreaped:", err)
			}
		}
		fmt.Println(ev.Format())
		os.Exit(0)
	}
	for _, tc := range []struct {
		name, script string
		term         bool // send SIGTERM once the program prints "ready"
		want         protocol.Event
		warning      string // a warning line init prints
		reaped       bool   // check that no child is left
	}{
		{"exit code", "exit 4", false, protocol.Event{Kind: protocol.EventExit, Code: 4}, "", true},
		{"killed", "kill -SEGV $$", false, protocol.Event{Kind: protocol.EventExit, Code: 139, Signal: "SIGSEGV"}, "", true},
		{"orphans reaped", "(sleep 0.1 &); sleep 0.5; exit 0", false, protocol.Event{Kind: protocol.EventExit, Code: 0}, "", true},
		{"SIGTERM forwarded", `sleep 10 & trap 'kill $!; exit 3' TERM; echo ready; wait`, true, protocol.Event{Kind: protocol.EventExit, Code: 3}, "", false},
		{"SIGKILL after the timeout", `trap "" TERM; echo ready; exec sleep 10`, true, protocol.Event{Kind: protocol.EventExit, Code: 137, Signal: "SIGKILL"}, "did not stop 300ms after the signal: killing it", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestSupervise$")
			cmd.Env = append(os.Environ(), "GUESTINIT_TEST_SUPERVISE="+tc.script)
			if tc.reaped {
				cmd.Env = append(cmd.Env, "GUESTINIT_TEST_REAPED=1")
			}
			stdout, _ := cmd.StdoutPipe()
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			start := time.Now()
			var lines []string
			sawWarning := false
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				line := sc.Text()
				if strings.HasPrefix(line, protocol.MarkerPrefix+"warning: ") {
					if tc.warning == "" || !strings.Contains(line, tc.warning) {
						t.Errorf("unexpected warning %q", line)
					}
					sawWarning = true
					continue
				}
				if line == "ready" && tc.term {
					cmd.Process.Signal(syscall.SIGTERM)
					continue
				}
				lines = append(lines, line)
			}
			cmd.Wait()
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %v: the program was not stopped", time.Since(start))
			}
			if tc.warning != "" && !sawWarning {
				t.Errorf("no warning %q", tc.warning)
			}
			if len(lines) != 2 {
				t.Fatalf("output %q, want an exec marker and an exit marker", lines)
			}
			if e, ok := protocol.ParseEvent(lines[0]); !ok || e.Kind != protocol.EventExec || e.Pid <= 0 {
				t.Errorf("first line %q, want the exec marker", lines[0])
			}
			got, ok := protocol.ParseEvent(lines[1])
			if !ok {
				t.Fatalf("last line %q is no marker", lines[1])
			}
			got.Uptime = 0
			if got != tc.want {
				t.Errorf("exit marker %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestSuperviseSeccomp runs a shell under the seccomp filter, in a child
// process as TestSupervise does, with every syscall allowed but getppid:
// the init reports getppid once, the shell gets ENOSYS from it (enforce)
// or its parent's pid (log), and the helper's pipes do not reach it.
func TestSuperviseSeccomp(t *testing.T) {
	if mode := os.Getenv("GUESTINIT_TEST_SECCOMP"); mode != "" {
		unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
		var allow []int
		for nr := 0; nr <= protocol.MaxSyscall; nr++ {
			if nr != unix.SYS_GETPPID {
				allow = append(allow, nr)
			}
		}
		ev, err := supervise(Plan{
			Path: "/bin/sh", Argv: []string{"/bin/sh", "-c", `echo "ppid=$PPID"; [ -e /proc/self/fd/3 ] || [ -e /proc/self/fd/4 ] && echo leaked; echo "pid=$$"`},
			Dir: "/", Env: []string{"PATH=" + DefaultPath}, Uid: os.Getuid(), Gid: os.Getgid(),
			Seccomp: mode, SeccompAllow: allow,
		}, time.Second)
		if err != nil {
			fmt.Println("supervise:", err)
			os.Exit(1)
		}
		fmt.Println(ev.Format())
		os.Exit(0)
	}
	for _, mode := range []string{protocol.SeccompEnforce, protocol.SeccompLog} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestSuperviseSeccomp$")
			cmd.Env = append(os.Environ(), "GUESTINIT_TEST_SECCOMP="+mode)
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%v; output:\n%s", err, out)
			}
			var events []protocol.Event
			vars := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if e, ok := protocol.ParseEvent(line); ok {
					events = append(events, e)
					continue
				}
				if line == "leaked" {
					t.Errorf("the helper's pipes reached the program")
				}
				k, v, _ := strings.Cut(line, "=")
				vars[k] = v
			}
			if len(events) != 3 || events[0].Kind != protocol.EventExec || events[2].Kind != protocol.EventExit || events[2].Code != 0 {
				t.Fatalf("events %+v, want exec, seccomp, exit 0; output:\n%s", events, out)
			}
			sc := events[1]
			want := map[string]string{protocol.SeccompEnforce: protocol.SeccompDenied, protocol.SeccompLog: protocol.SeccompAllowed}[mode]
			if sc.Kind != protocol.EventSeccomp || sc.Nr != unix.SYS_GETPPID || sc.Msg != want || strconv.Itoa(sc.Pid) != vars["pid"] {
				t.Errorf("seccomp event %+v, want getppid (%d) %s by pid %s", sc, unix.SYS_GETPPID, want, vars["pid"])
			}
			if events[0].Pid != sc.Pid {
				t.Errorf("exec marker pid %d, the program's %d: the program is not the helper's exec", events[0].Pid, sc.Pid)
			}
			ppid := strconv.Itoa(cmd.Process.Pid)
			if mode == protocol.SeccompLog && vars["ppid"] != ppid {
				t.Errorf("log mode: $PPID %q, want the init's pid %s", vars["ppid"], ppid)
			}
			if mode == protocol.SeccompEnforce && vars["ppid"] == ppid {
				t.Errorf("enforce mode: getppid ran: $PPID %q", vars["ppid"])
			}
		})
	}
}
