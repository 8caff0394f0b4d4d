// Package cli implements the bespoke command line: one file per verb, each
// verb a function that takes a context, its arguments and its streams, so
// that tests can run every command in-process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Env holds the streams a command reads and writes.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// A verb is one bespoke subcommand.
type verb struct {
	name  string
	usage string // one line: arguments after the verb name
	short string // one line: what it does
	run   func(ctx context.Context, env *Env, args []string) error
}

// verbs is the command table. Each verb lives in a file of its own. It is
// filled in init so that verbs may call newFlagSet, which reads it.
var verbs []verb

func init() {
	verbs = verbTable()
}

func verbTable() []verb {
	return []verb{
		{"trace", "[-o manifest.json] [--ready tcp:PORT|log:REGEX] [--workload CMD] [--timeout DUR] -- PROGRAM [ARGS...]", "record what an unmodified program uses (manifest)", runTrace},
		{"features", "MANIFEST", "list the kernel options a manifest requires, with the facts behind each", runFeatures},
		{"config", "--manifest M [--target T] [--opt o2|size] [--enable SYM]... [--disable SYM]... [--explain] -o FILE", "write a kernel .config specialized for a manifest", runConfig},
		{"kernel", "build --config FILE [--kernel-src PATH] [-j N] [--make VAR=VALUE]... [-n] -o DIR", "build a kernel (cached by config hash)", runKernel},
		{"doctor", "", "check the host tools that bespoke needs", runDoctor},
		{"build", "[-f bespoke.yaml | --ready R --workload W -- PROGRAM ARGS] [-o IMAGE_DIR]", "trace, configure, compile and package one program into an image", runBuild},
		{"run", "IMAGE_DIR [-p HOST:GUEST]... [-m 256M] [--cpus N] [-v HOSTFILE:/GUEST/PATH]... [--accel auto|kvm|tcg] [-e K=V]... [--timeout DUR] [-- ARGS]", "boot an image under QEMU", runRun},
		{"verify", "IMAGE_DIR [--fix] [--max-rounds N] [--no-trace]", "run the spec's workload against a booted image; classify and --fix what it lacks", runVerify},
		{"bench", "IMAGE_DIR [--runs N] [--workload CMD] [--metric REGEX]", "measure the workload on the image's kernels side by side (-O2 and profile-guided)", runBench},
		{"min-memory", "IMAGE_DIR [--low 16M] [--high M] [--step 1]", "find the least memory (-m) with which an image passes its workload", runMinMemory},
		{"cache", "[ls | prune [--max-size 20G] [--older-than 30d] [-n]]", "list bespoke's cache (kernels, build dirs, sources, profiles) or prune it, least recently used first", runCache},
		{"report", "IMAGE_DIR...", "print a Markdown table of images: sizes, options, files, boot, workload, verify", runReport},
		{"version", "", "print the bespoke version", runVersion},
	}
}

// Version is set at link time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

// ExitError carries an exit status to Main without printing anything more,
// e.g. the status of the program that ran inside a VM.
type ExitError struct {
	Code int
	Err  error // optional: printed when set
}

func (e *ExitError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

func (e *ExitError) Unwrap() error { return e.Err }

// errUsage marks an error in how a command was called; Main exits 2.
var errUsage = errors.New("usage")

func usageErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

// Main runs bespoke with args (without the program name) and returns the
// process exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	name := args[0]
	for _, v := range verbs {
		if v.name != name {
			continue
		}
		err := v.run(ctx, env, args[1:])
		return report(env, name, err)
	}
	fmt.Fprintf(stderr, "bespoke: unknown command %q (run 'bespoke help' for the list)\n", name)
	return 2
}

func report(env *Env, name string, err error) int {
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		if exit.Err != nil {
			fmt.Fprintf(env.Stderr, "bespoke %s: %v\n", name, exit.Err)
		}
		return exit.Code
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(env.Stderr, "bespoke %s: %v\n", name, err)
	if errors.Is(err, errUsage) {
		return 2
	}
	if errors.Is(err, context.Canceled) {
		return 130
	}
	return 1
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "bespoke builds a single-application Linux VM image for one unmodified program.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage:")
	for _, v := range verbs {
		fmt.Fprintf(w, "  bespoke %-10s %s\n", v.name, v.short)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'bespoke COMMAND -h' for the flags of a command.")
}

// newFlagSet returns a FlagSet for a verb whose usage text names the verb.
func newFlagSet(env *Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("bespoke "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		for _, v := range verbs {
			if v.name == strings.Fields(name)[0] {
				fmt.Fprintf(env.Stderr, "Usage: bespoke %s %s\n\n%s.\n\nFlags:\n", v.name, v.usage, v.short)
			}
		}
		fs.PrintDefaults()
	}
	return fs
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments (as in `bespoke run IMAGE -p 8080:80`). Everything
// after a literal "--" is returned as rest, untouched.
func parseInterspersed(fs *flag.FlagSet, args []string) (positional, rest []string, err error) {
	for i, a := range args {
		if a == "--" {
			rest = append([]string{}, args[i+1:]...)
			args = args[:i]
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, err
			}
			return nil, nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, rest, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// oneImageDir parses the flags of a verb that takes one IMAGE_DIR and
// returns it.
func oneImageDir(fs *flag.FlagSet, args []string) (string, error) {
	pos, rest, err := parseInterspersed(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 || len(rest) > 0 {
		return "", usageErrorf("want one IMAGE_DIR")
	}
	return pos[0], nil
}

// stringList is a repeatable string flag (-p A -p B).
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runVersion(ctx context.Context, env *Env, args []string) error {
	fmt.Fprintln(env.Stdout, "bespoke", Version)
	return nil
}

// isTerminal reports whether w is a terminal, to decide on progress lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
