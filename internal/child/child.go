// Package child starts the host processes bespoke runs and waits for (QEMU,
// a workload's shell) so that they do not outlive bespoke, its context or
// their timeout, even when bespoke is killed with SIGKILL.
package child

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Start starts cmd and waits for it in a goroutine locked to its OS
// thread; the channel receives cmd.Wait's result. Linux sends Pdeathsig
// when the thread that forked the child exits, not the process; a
// goroutine that may move between threads could see its child killed
// early when the runtime retires its thread. Locking keeps the forking
// thread alive for the child's whole life, and it dies with bespoke's
// process.
func Start(cmd *exec.Cmd) (<-chan error, error) {
	return start(cmd, nil)
}

// start is Start; exited, when set, is called once the child has exited
// but before it is reaped (its pid, and so its process group id, cannot
// be reused yet).
func start(cmd *exec.Cmd, exited func()) (<-chan error, error) {
	started := make(chan error, 1)
	waitc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread ends with this goroutine, after
		// the child has been reaped.
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		if exited != nil {
			awaitExit(cmd.Process.Pid)
			exited()
		}
		waitc <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return waitc, nil
}

// awaitExit returns once the child pid has exited, leaving it unreaped.
func awaitExit(pid int) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return // exited, or an error cmd.Wait reports
		}
	}
}

// InGroup makes cmd (not started yet; run it with Start) a process group
// of its own, killed whole with SIGKILL when its context ends, and killed
// (its leader) when bespoke dies; credentials already set are kept.
func InGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = WaitDelay
}

// Run is cmd.Run through Start.
func Run(cmd *exec.Cmd) error {
	waitc, err := Start(cmd)
	if err != nil {
		return err
	}
	return <-waitc
}

// WaitDelay bounds the wait for a shell's output once its process group
// is gone: a process it started in a session of its own may still hold it.
const WaitDelay = 2 * time.Second

// TimeoutError says a command did not finish within its timeout.
type TimeoutError struct{ Timeout time.Duration }

func (e *TimeoutError) Error() string { return fmt.Sprintf("did not finish within %s", e.Timeout) }

// Shell runs command with sh -c on the host, its standard output and
// error to out, and returns its exit code (-1 when a signal ended it).
// The error is for a command that could not run, that did not finish
// within timeout (a *TimeoutError; 0: no timeout), or whose context
// ended first (ctx's error).
//
// The shell runs in a process group of its own. When ctx ends or the
// timeout passes, the whole group is killed (SIGKILL): the shell and
// whatever it started, such as a pipeline or a backgrounded client that
// keeps out open. When the shell exits, what it left running in its group
// is killed too: a workload ends with its shell. When bespoke is killed
// (even by SIGKILL), the kernel kills the shell (Pdeathsig); its children
// do not inherit that, so they are killed through the group on cancel
// only.
func Shell(ctx context.Context, command string, timeout time.Duration, out io.Writer) (int, error) {
	wctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(wctx, "sh", "-c", command)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true, // killed as a group; Ctrl-C on the terminal reaches bespoke only
		Pdeathsig: syscall.SIGKILL,
	}
	var g group
	cmd.Cancel = func() error { return g.kill(cmd.Process.Pid) }
	cmd.WaitDelay = WaitDelay
	waitc, err := start(cmd, func() {
		g.kill(cmd.Process.Pid)
		g.reaped()
	})
	if err != nil {
		return -1, err
	}
	err = <-waitc
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return -1, ctx.Err()
	case wctx.Err() != nil:
		return -1, &TimeoutError{timeout}
	case errors.As(err, &exit):
		return exit.ExitCode(), nil
	case errors.Is(err, exec.ErrWaitDelay):
		return 0, fmt.Errorf("its output stayed open %s after it exited: a process it started outside its process group holds it", WaitDelay)
	case err != nil:
		return -1, err
	}
	return 0, nil
}

// group is the process group of a child started with Setpgid: its id is
// the child's pid, which stays reserved until the child is reaped.
type group struct {
	mu   sync.Mutex
	gone bool // the child is about to be reaped: the id may be reused
}

// kill sends SIGKILL to every process of the group.
func (g *group) kill(pgid int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone {
		return os.ErrProcessDone
	}
	err := syscall.Kill(-pgid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

func (g *group) reaped() {
	g.mu.Lock()
	g.gone = true
	g.mu.Unlock()
}
