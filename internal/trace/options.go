package trace

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bespoke-os/bespoke/internal/elfdeps"
	"github.com/bespoke-os/bespoke/internal/manifest"
)

// Options says what to trace and how.
type Options struct {
	// Program is the program to run, a path or a name looked up in $PATH.
	Program string
	// Args are its arguments. "{port}" is replaced by a free TCP port and
	// "{host}" by 127.0.0.1, here as in Ready and Workload.
	Args []string
	// Ready, when set, is waited for before the workload runs; once the
	// workload is done (or at once, without a workload) the program is
	// stopped with SIGTERM, then SIGKILL after Grace.
	Ready Ready
	// Workload is a shell command (sh -c) run on the host once the program
	// is ready. It needs Ready.
	Workload string
	// WorkloadTimeout bounds the workload (0: no bound). When it passes,
	// the workload is killed with everything it started, the program too,
	// and Run fails.
	WorkloadTimeout time.Duration
	// Timeout bounds the wait for readiness (default DefaultReadyTimeout),
	// or, without Ready, the whole trace (0: none; when it expires the
	// program is stopped and the manifest says so).
	Timeout time.Duration
	// Grace is how long a stopped program has between SIGTERM and SIGKILL
	// (default 5s).
	Grace time.Duration
	// Env is the program's environment (nil: bespoke's own) and Dir its
	// working directory ("": bespoke's own).
	Env []string
	Dir string
	// Stdout and Stderr receive the program's output (nil: discarded);
	// Log receives progress lines and the workload's output.
	Stdout, Stderr, Log io.Writer
	// NoSeccomp traces with PTRACE_SYSCALL (two stops per syscall) instead
	// of a seccomp filter (one stop, two for the syscalls whose result
	// matters). It is chosen anyway when the kernel refuses the filter.
	NoSeccomp bool
	// AllResults stops at the exit of every syscall, not only of those
	// whose result the manifest describes, so that every error is
	// counted (Syscall.Errors): an ENOSYS from a syscall the kernel lacks
	// or left out of its table, an EACCES from a feature compiled out. It
	// doubles the stops; the guest tracer of bespoke verify uses it.
	AllResults bool

	// Coverage, when set, records which functions of the traced processes
	// run (manifest FunctionsRun): it is asked, once per executable file
	// a process maps, for the file offsets of its functions' entries
	// (nil: none), and a one-shot breakpoint goes at each.
	Coverage func(path string) []uint64

	// Credential, when set, runs the program as that user while bespoke
	// stays root and traces it (the guest's tracer: the program runs as
	// the image's user).
	Credential *syscall.Credential
	// StopSignal asks the program to stop (default SIGTERM), after the
	// workload, at Timeout or on Stop.
	StopSignal syscall.Signal
	// Stop, when it becomes readable, stops the program with StopSignal
	// (SIGKILL after Grace) and ends the trace with its manifest, as the
	// end of a workload does.
	Stop <-chan struct{}
}

// DefaultReadyTimeout bounds the wait for a program to become ready.
const DefaultReadyTimeout = 60 * time.Second

// DefaultGrace is the time between SIGTERM and SIGKILL.
const DefaultGrace = 5 * time.Second

// Resolve finds program as exec would and checks that it can run: an ELF
// executable whose interpreter exists, or a #! script whose interpreter
// exists. Errors are one line and say what to do. The program is exec'ed
// at path (absolute, symlinks kept).
func Resolve(program, dir string) (mp manifest.Program, path string, err error) {
	mp = manifest.Program{Path: program}
	p := program
	switch {
	case program == "":
		return mp, "", errors.New("no program given")
	case !strings.Contains(p, "/"):
		lp, err := exec.LookPath(p)
		if err != nil {
			if errors.Is(err, exec.ErrNotFound) {
				return mp, "", fmt.Errorf("%s: program not found in $PATH: check its name or give its path", program)
			}
			return mp, "", fmt.Errorf("looking up %s: %w", program, err)
		}
		p = lp
	case dir != "" && !filepath.IsAbs(p):
		p = filepath.Join(dir, p)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return mp, "", fmt.Errorf("resolving %s: %w", program, err)
	}
	info, err := elfdeps.Inspect(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return mp, "", fmt.Errorf("%s: no such file: check the path", program)
		}
		return mp, "", fmt.Errorf("checking program: %w", err)
	}
	if info.Interp != "" {
		if _, err := os.Stat(info.Interp); err != nil {
			what := "ELF interpreter"
			if info.Kind == elfdeps.KindScript {
				what = "#! interpreter"
			}
			return mp, "", fmt.Errorf("checking program: %s: %w: %s %s does not exist (install it or fix the first line)", abs, elfdeps.ErrNoInterpreter, what, info.Interp)
		}
	}
	if _, err := elfdeps.Closure(abs, elfdeps.Options{}); errors.Is(err, elfdeps.ErrNoInterpreter) {
		return mp, "", fmt.Errorf("checking program: %w", err)
	}
	mp.Resolved, err = filepath.EvalSymlinks(abs)
	if err != nil {
		mp.Resolved = abs
	}
	mp.Kind = info.Kind
	if info.Kind == elfdeps.KindScript {
		mp.Interpreter = info.Interp
	}
	return mp, abs, nil
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// fillPlaceholders replaces {port} (with a free port, picked once) and
// {host} in the args, the readiness check and the workload.
func fillPlaceholders(o *Options) error {
	uses := strings.Contains(o.Workload, "{port}") || o.Ready.Port == "{port}"
	for _, a := range o.Args {
		uses = uses || strings.Contains(a, "{port}")
	}
	port := ""
	if uses {
		var err error
		if port, err = freePort(); err != nil {
			return err
		}
	}
	r := strings.NewReplacer("{port}", port, "{host}", "127.0.0.1")
	args := make([]string, len(o.Args))
	for i, a := range o.Args {
		args[i] = r.Replace(a)
	}
	o.Args = args
	o.Workload = r.Replace(o.Workload)
	if o.Ready.Kind == "tcp" {
		o.Ready.Port = r.Replace(o.Ready.Port)
	}
	return nil
}
