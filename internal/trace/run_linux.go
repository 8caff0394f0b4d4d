//go:build linux && amd64

package trace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/bespoke-os/bespoke/internal/child"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"golang.org/x/sys/unix"
)

var errNoSeccomp = errors.New("the kernel refused the seccomp filter")

// Run runs the program under the tracer, with the readiness check and
// workload of opts, and returns what it used. A program that fails or
// crashes is recorded in the manifest's Exit, not returned as an error.
// On error (a bad program, a program that never became ready, ctx
// cancelled) every traced process has been killed and nothing is returned.
func Run(ctx context.Context, opts Options) (*manifest.Manifest, error) {
	prog, path, err := Resolve(opts.Program, opts.Dir)
	if err != nil {
		return nil, err
	}
	if opts.Workload != "" && opts.Ready.IsZero() {
		return nil, errors.New("a workload needs a readiness check (tcp:PORT or log:REGEX) to know when to start")
	}
	if err := fillPlaceholders(&opts); err != nil {
		return nil, err
	}
	// Another program on the ready port would make this one look ready
	// at once, and the workload would run against it.
	if opts.Ready.accepts() {
		return nil, fmt.Errorf("the ready port is taken: %s already accepts connections before %s starts (another program listens there): stop it, or use tcp:{port} so that bespoke picks a free port", opts.Ready, prog.Path)
	}
	prog.Args = append([]string{}, opts.Args...)
	if opts.Timeout == 0 && !opts.Ready.IsZero() {
		opts.Timeout = DefaultReadyTimeout
	}
	if opts.Grace == 0 {
		opts.Grace = DefaultGrace
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	seccomp := !opts.NoSeccomp
	for {
		m, err := run(ctx, opts, prog, path, seccomp)
		if errors.Is(err, errNoSeccomp) && seccomp {
			fmt.Fprintf(opts.Log, "trace: %v; tracing every syscall entry and exit instead (slower)\n", err)
			seccomp = false
			continue
		}
		return m, err
	}
}

// session is one traced run of the program.
type session struct {
	opts    Options
	prog    manifest.Program
	tr      *tracer
	done    chan struct{} // closed when no tracee is left
	ready   chan struct{} // closed when the log regex matched
	readyMu sync.Once
}

func run(ctx context.Context, opts Options, prog manifest.Program, execPath string, seccomp bool) (*manifest.Manifest, error) {
	s := &session{opts: opts, prog: prog, done: make(chan struct{}), ready: make(chan struct{})}
	var warnings []string
	var wmu sync.Mutex
	warn := func(w string) {
		wmu.Lock()
		warnings = append(warnings, w)
		wmu.Unlock()
	}
	s.tr = newTracer(seccomp, warn)
	s.tr.allResults = opts.AllResults
	if opts.Coverage != nil {
		s.tr.cov = newCoverage(opts.Coverage)
	}

	// The program's output goes through pipes: shown, and searched for
	// the log readiness regex.
	var copies sync.WaitGroup
	var match *matcher
	if opts.Ready.Kind == "log" {
		match = &matcher{re: opts.Ready.Regex, found: func() { s.readyMu.Do(func() { close(s.ready) }) }}
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting program: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("starting program: %w", err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("starting program: %w", err)
	}
	for _, c := range []struct {
		r *os.File
		w io.Writer
	}{{outR, opts.Stdout}, {errR, opts.Stderr}} {
		w := c.w
		if w == nil {
			w = io.Discard
		}
		if match != nil {
			w = io.MultiWriter(w, match)
		}
		copies.Add(1)
		go func(r *os.File, w io.Writer) {
			defer copies.Done()
			io.Copy(w, r)
			r.Close()
		}(c.r, w)
	}

	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	self, err := os.Executable()
	if err != nil && seccomp {
		return nil, fmt.Errorf("starting program: finding bespoke's own binary for the seccomp stub: %w", err)
	}
	path, argv := execPath, append([]string{prog.Path}, opts.Args...)
	cred := opts.Credential
	if seccomp {
		path, argv = self, append([]string{"bespoke-trace-stub", execPath}, argv...)
		env = append(append([]string{}, env...), stubEnv+"=1")
		if cred != nil {
			// The stub starts as root and switches itself (see stubCredEnv).
			env = append(env, stubCredEnv+"="+credString(cred))
			cred = nil
		}
	}
	attr := &syscall.ProcAttr{
		Dir:   opts.Dir,
		Env:   env,
		Files: []uintptr{devnull.Fd(), outW.Fd(), errW.Fd()},
		Sys: &syscall.SysProcAttr{
			Ptrace:     true,
			Setpgid:    true, // Ctrl-C on the terminal reaches bespoke, which stops the program
			Pdeathsig:  syscall.SIGKILL,
			Credential: cred,
		},
	}

	started := make(chan error, 1)
	go func() {
		// All ptrace calls come from this thread. It is never unlocked:
		// when this goroutine ends the thread exits, and
		// PTRACE_O_EXITKILL kills any tracee still there.
		runtime.LockOSThread()
		if err := s.tr.start(path, argv, attr); err != nil {
			started <- err
			close(s.done)
			return
		}
		started <- nil
		s.tr.loop()
		close(s.done)
	}()
	err = <-started
	outW.Close()
	errW.Close()
	devnull.Close()
	if err != nil {
		copies.Wait()
		return nil, fmt.Errorf("starting %s: %w", prog.Path, err)
	}
	fmt.Fprintf(opts.Log, "trace: started %s (pid %d)\n", prog.Path, s.tr.root)
	t0 := time.Now()

	var timeout <-chan time.Time
	if opts.Timeout > 0 {
		timer := time.NewTimer(opts.Timeout)
		defer timer.Stop()
		timeout = timer.C
	}
	abort := func(err error) (*manifest.Manifest, error) {
		s.tr.kill(unix.SIGKILL)
		<-s.done
		copies.Wait()
		return nil, err
	}
	stopped := false
	var wl *manifest.Workload
	if !opts.Ready.IsZero() {
		if err := s.waitReady(ctx, timeout); err != nil {
			return abort(err)
		}
		fmt.Fprintf(opts.Log, "trace: ready (%s) after %.1fs\n", opts.Ready, time.Since(t0).Seconds())
		if opts.Workload != "" {
			wl, err = runWorkload(ctx, opts.Workload, opts.WorkloadTimeout, opts.Log)
			if err != nil {
				return abort(err)
			}
			fmt.Fprintf(opts.Log, "trace: workload exited with code %d after %.1fs\n", wl.ExitCode, wl.Seconds)
		}
		stopped = true
		if err := s.stop(ctx); err != nil {
			return abort(err)
		}
	} else {
		select {
		case <-s.done:
		case <-ctx.Done():
			return abort(fmt.Errorf("tracing %s: %w", prog.Path, ctx.Err()))
		case <-opts.Stop:
			stopped = true
			if err := s.stop(ctx); err != nil {
				return abort(err)
			}
		case <-timeout:
			fmt.Fprintf(opts.Log, "trace: timeout (%s): stopping %s\n", opts.Timeout, prog.Path)
			stopped = true
			if err := s.stop(ctx); err != nil {
				return abort(err)
			}
		}
	}
	<-s.done
	waitTimeout(&copies, 5*time.Second)

	if !s.tr.execed {
		if st := s.tr.rootStatus; seccomp && st != nil && st.Exited() && st.ExitStatus() == stubNoSeccomp {
			return nil, errNoSeccomp
		}
		return nil, fmt.Errorf("starting %s: it was never exec'ed (see its output above)", prog.Path)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("tracing %s: %w", prog.Path, ctx.Err())
	}

	m := s.tr.rec.build(realHost{mounts: s.mounts()}, execPath, warn)
	m.Program = prog
	m.Workload = wl
	m.Exit = exitOf(s.tr.rootStatus, stopped)
	if s.tr.cov != nil {
		m.FunctionsRun = s.tr.cov.result()
	}
	for _, w := range warnings {
		fmt.Fprintf(opts.Log, "trace: warning: %s\n", w)
	}
	m.Normalize()
	return m, nil
}

// mounts reads the mount table the program saw (bespoke's own when the
// program is gone, which is the same unless it made a mount namespace).
func (s *session) mounts() []mountPoint {
	return readMountinfo("/proc/self/mountinfo")
}

func exitOf(ws *unix.WaitStatus, stopped bool) *manifest.Exit {
	e := &manifest.Exit{Stopped: stopped}
	switch {
	case ws == nil:
		e.Code = -1
	case ws.Exited():
		e.Code = ws.ExitStatus()
	case ws.Signaled():
		e.Code = 128 + int(ws.Signal())
		e.Signal = signalName(ws.Signal())
	}
	return e
}

// waitReady waits until the program is ready, exits, or time runs out.
func (s *session) waitReady(ctx context.Context, timeout <-chan time.Time) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.opts.Ready.accepts() {
			return nil
		}
		select {
		case <-s.ready:
			return nil
		case <-s.done:
			return fmt.Errorf("program exited before it became ready (%s): %s", s.opts.Ready, describeExit(exitOf(s.tr.rootStatus, false)))
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to become ready: %w", s.prog.Path, ctx.Err())
		case <-timeout:
			return fmt.Errorf("program did not become ready (%s) within %s: check the readiness check and the program's output", s.opts.Ready, s.opts.Timeout)
		case <-tick.C:
		}
	}
}

func describeExit(e *manifest.Exit) string {
	if e.Signal != "" {
		return "killed by " + e.Signal
	}
	return fmt.Sprintf("exit code %d", e.Code)
}

// stop sends SIGTERM to every traced process, then SIGKILL after the grace
// period, and waits until they are gone.
func (s *session) stop(ctx context.Context) error {
	sig := s.opts.StopSignal
	if sig == 0 {
		sig = unix.SIGTERM
	}
	fmt.Fprintf(s.opts.Log, "trace: stopping %s (%s)\n", s.prog.Path, signalName(sig))
	s.tr.kill(sig)
	grace := time.NewTimer(s.opts.Grace)
	defer grace.Stop()
	select {
	case <-s.done:
		return nil
	case <-grace.C:
		fmt.Fprintf(s.opts.Log, "trace: %s still running after %s: SIGKILL\n", s.prog.Path, s.opts.Grace)
		s.tr.kill(unix.SIGKILL)
	case <-ctx.Done():
		return fmt.Errorf("tracing %s: %w", s.prog.Path, ctx.Err())
	}
	<-s.done
	return nil
}

// maxWorkloadOutput bounds the workload output kept in the manifest.
const maxWorkloadOutput = 64 << 10

// runWorkload runs the workload (see child.Shell: in a process group of
// its own, killed with what it started when ctx ends or timeout passes).
func runWorkload(ctx context.Context, command string, timeout time.Duration, log io.Writer) (*manifest.Workload, error) {
	fmt.Fprintf(log, "trace: running workload: %s\n", command)
	var out capped
	t0 := time.Now()
	code, err := child.Shell(ctx, command, timeout, io.MultiWriter(&out, log))
	var te *child.TimeoutError
	switch {
	case errors.As(err, &te):
		return nil, fmt.Errorf("running workload: the workload %w", err)
	case err != nil:
		return nil, fmt.Errorf("running workload: %w", err)
	}
	return &manifest.Workload{Command: command, Seconds: time.Since(t0).Seconds(), Output: out.String(), ExitCode: code}, nil
}

// capped keeps the first maxWorkloadOutput bytes written to it.
type capped struct {
	mu        sync.Mutex
	b         bytes.Buffer
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := maxWorkloadOutput - c.b.Len()
	if len(p) > room {
		c.b.Write(p[:max(room, 0)])
		c.truncated = true
	} else {
		c.b.Write(p)
	}
	return len(p), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.truncated {
		return c.b.String() + "\n[output truncated]\n"
	}
	return c.b.String()
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	c := make(chan struct{})
	go func() { wg.Wait(); close(c) }()
	select {
	case <-c:
	case <-time.After(d):
	}
}
