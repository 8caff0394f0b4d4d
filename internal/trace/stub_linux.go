//go:build linux && amd64

package trace

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The stub: Run does not exec the program directly. It re-executes the
// current binary (bespoke, or a test binary) with stubEnv set; this init
// function then installs a seccomp filter that returns SECCOMP_RET_TRACE
// for every syscall, and execs the program. Go's os/exec has no hook
// between fork and exec, and the filter must be in place before the
// program's first instruction.
const (
	stubEnv = "BESPOKE_TRACE_STUB"
	// stubNoSeccomp is the stub's exit code when the kernel refused the
	// filter: Run then traces with PTRACE_SYSCALL.
	stubNoSeccomp = 121
	// stubCredEnv carries Options.Credential to the stub as
	// "UID:GID:G1,G2": the stub, started as root, switches to it before it
	// execs the program. The stub's own binary (bespoke, or a test binary
	// in a 0700 build directory) may not be executable by that user.
	stubCredEnv = "BESPOKE_TRACE_STUB_CRED"
)

func init() {
	if os.Getenv(stubEnv) == "" {
		return
	}
	// init runs on the main thread; keep it there so that the filter and
	// the exec happen on the thread group leader.
	runtime.LockOSThread()
	stubMain()
}

func stubMain() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "bespoke trace stub: missing program")
		os.Exit(127)
	}
	path, argv := os.Args[1], os.Args[2:]
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, stubEnv+"=") && !strings.HasPrefix(kv, stubCredEnv+"=") {
			env = append(env, kv)
		}
	}
	if c := os.Getenv(stubCredEnv); c != "" {
		if err := switchUser(c); err != nil {
			fmt.Fprintf(os.Stderr, "bespoke trace stub: switching to %s: %v\n", c, err)
			os.Exit(127)
		}
	}
	if err := installFilter(); err != nil {
		os.Exit(stubNoSeccomp)
	}
	err := unix.Exec(path, argv, env)
	fmt.Fprintf(os.Stderr, "bespoke trace: exec %s: %v\n", path, err)
	os.Exit(127)
}

// installFilter makes every syscall of this thread (and of everything it
// execs and forks) stop for the tracer with PTRACE_EVENT_SECCOMP.
func installFilter() error {
	filter := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_TRACE}}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	set := func() unix.Errno {
		_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
		return e
	}
	e := set()
	if e == unix.EACCES {
		// Without CAP_SYS_ADMIN a filter needs no_new_privs.
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return err
		}
		e = set()
	}
	if e != 0 {
		return e
	}
	return nil
}

// credString is the stubCredEnv value for c.
func credString(c *syscall.Credential) string {
	gs := make([]string, len(c.Groups))
	for i, g := range c.Groups {
		gs[i] = strconv.FormatUint(uint64(g), 10)
	}
	return fmt.Sprintf("%d:%d:%s", c.Uid, c.Gid, strings.Join(gs, ","))
}

// switchUser sets the groups, gid and uid of a stubCredEnv value, for
// every thread of the process (Go's syscall package does so).
func switchUser(v string) error {
	f := strings.Split(v, ":")
	if len(f) != 3 {
		return fmt.Errorf("want UID:GID:GROUPS")
	}
	uid, err1 := strconv.Atoi(f[0])
	gid, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return fmt.Errorf("want numeric ids")
	}
	var groups []int
	if f[2] != "" {
		for _, g := range strings.Split(f[2], ",") {
			n, err := strconv.Atoi(g)
			if err != nil {
				return err
			}
			groups = append(groups, n)
		}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	return nil
}
