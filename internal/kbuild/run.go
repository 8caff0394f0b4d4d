package kbuild

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/bespoke-os/bespoke/internal/child"
)

// Command is one command line that a build runs.
type Command struct {
	Dir  string   // working directory
	Env  []string // added to the environment (K=V)
	Args []string // Args[0] is the program
	// Do, when set, is a step bespoke runs itself (no process), described
	// by Note.
	Do   func() error
	Note string
	// ExtraFiles are inherited by the process as fds 3 and up (not
	// close-on-exec), and so by every process it starts: a build passes
	// the work dir's lock, so that the dir stays locked until the last
	// process of the build has exited, even after bespoke has.
	ExtraFiles []*os.File
}

// String returns the command as a shell line a user can run by hand.
func (c Command) String() string {
	if c.Do != nil {
		return "# bespoke: " + c.Note
	}
	var parts []string
	if c.Dir != "" {
		parts = append(parts, "cd", shellQuote(c.Dir), "&&")
	}
	for _, e := range c.Env {
		parts = append(parts, shellQuote(e))
	}
	for _, a := range c.Args {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	if k, v, ok := strings.Cut(s, "="); ok && !strings.ContainsAny(k, " '\"$") {
		return k + "='" + strings.ReplaceAll(v, "'", `'\''`) + "'"
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// A Runner runs one command with its output to out and returns its
// error. Tests inject a fake make; the default is ExecRunner.
type Runner func(ctx context.Context, c Command, out io.Writer) error

// killGrace is how long make gets after SIGTERM before its process
// group is killed with SIGKILL.
const killGrace = 5 * time.Second

// ExecRunner runs c as a process in its own process group. When ctx is
// cancelled the whole group (make and every compiler it started) gets
// SIGTERM, then SIGKILL after a few seconds. When bespoke dies, even by
// SIGKILL, the process gets SIGKILL (Pdeathsig); the processes it started
// (compilers) run on and hold c.ExtraFiles (the work dir's lock) until
// they exit.
func ExecRunner(ctx context.Context, c Command, out io.Writer) error {
	cmd := exec.CommandContext(ctx, c.Args[0], c.Args[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.ExtraFiles = c.ExtraFiles
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		pgid := cmd.Process.Pid
		err := syscall.Kill(-pgid, syscall.SIGTERM)
		time.AfterFunc(killGrace, func() { syscall.Kill(-pgid, syscall.SIGKILL) })
		return err
	}
	cmd.WaitDelay = killGrace + 5*time.Second
	waitc, err := child.Start(cmd) // the forking thread lives as long as make, as Pdeathsig needs
	if err == nil {
		err = <-waitc
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
