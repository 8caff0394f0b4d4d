package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/bespoke-os/bespoke/internal/trace"
)

// runTrace runs a program under the tracer and writes its manifest.
//
//	bespoke trace -o redis.json --ready tcp:{port} \
//	    --workload 'redis-benchmark -p {port} -q -n 2000 -t set,get' \
//	    -- redis-server --port {port} --save '' --appendonly no
func runTrace(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "trace")
	out := fs.String("o", "manifest.json", "write the manifest to `FILE`")
	ready := fs.String("ready", "", "wait until the program is ready: tcp:PORT (a port on 127.0.0.1 accepts) or log:REGEX (its output matches)")
	workload := fs.String("workload", "", "shell `CMD` to run once the program is ready; the program is stopped afterwards. {port} and {host} are filled in")
	timeout := fs.Duration("timeout", 0, "with --ready: how long to wait for readiness (default 60s); without: stop the program after this long (default: none)")
	noSeccomp := fs.Bool("no-seccomp", false, "stop at every syscall entry and exit (PTRACE_SYSCALL) instead of using a seccomp filter")
	positional, rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	prog := append(positional, rest...)
	if len(prog) == 0 {
		return usageErrorf("no program given: bespoke trace [flags] -- PROGRAM [ARGS...]")
	}
	opts := trace.Options{
		Program:   prog[0],
		Args:      prog[1:],
		Workload:  *workload,
		Timeout:   *timeout,
		Stdout:    env.Stdout,
		Stderr:    env.Stderr,
		Log:       env.Stderr,
		NoSeccomp: *noSeccomp,
	}
	if *ready != "" {
		r, err := trace.ParseReady(*ready)
		if err != nil {
			return usageErrorf("%v", err)
		}
		opts.Ready = r
	}
	if *workload != "" && *ready == "" {
		return usageErrorf("--workload needs --ready (tcp:PORT or log:REGEX) to know when to start it")
	}
	t0 := time.Now()
	m, err := trace.Run(ctx, opts)
	if err != nil {
		return err
	}
	if err := m.WriteFile(*out); err != nil {
		return err
	}
	exit := fmt.Sprintf("exit code %d", m.Exit.Code)
	if m.Exit.Signal != "" {
		exit = "killed by " + m.Exit.Signal
	}
	if m.Exit.Stopped {
		exit += ", stopped by bespoke"
	}
	fmt.Fprintf(env.Stderr, "bespoke trace: %s (%s) in %.1fs: %d processes, %d threads, %d syscalls, %d paths, %d libraries -> %s\n",
		m.Program.Path, exit, time.Since(t0).Seconds(), m.Processes, m.Threads, len(m.Syscalls), len(m.Paths), len(m.Libraries), *out)
	if m.Workload != nil && m.Workload.ExitCode != 0 {
		// As bespoke build: the trace may not show a working program.
		return fmt.Errorf("the workload exited with code %d, so the trace may not show a working program; manifest written anyway: %s (the workload's output is in it)",
			m.Workload.ExitCode, *out)
	}
	return nil
}
