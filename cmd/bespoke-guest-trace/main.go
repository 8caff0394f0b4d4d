// Command bespoke-guest-trace runs an image's program under bespoke's
// tracer inside the guest, for `bespoke verify`: the guest init starts it
// (as root) in the program's place when the kernel command line has
// bespoke.trace. When the program has ended it prints the manifest on the
// console as a blob (protocol.BlobTrace) and exits with the program's
// status. A stop signal it receives is passed to the program as
// -stop-signal. Build it static: CGO_ENABLED=0.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/bespoke-os/bespoke/internal/trace"
	"golang.org/x/sys/unix"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("bespoke-guest-trace", flag.ContinueOnError)
	fl.SetOutput(stderr)
	uid := fl.Int("uid", 0, "run the program as this uid")
	gid := fl.Int("gid", 0, "and gid")
	groups := fl.String("groups", "", "supplementary groups, comma-separated")
	stopSig := fl.String("stop-signal", "SIGTERM", "the signal that stops the program")
	grace := fl.Duration("grace", 10*time.Second, "time between the stop signal and SIGKILL")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: bespoke-guest-trace [flags] -- PROGRAM [ARGS]")
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "bespoke-guest-trace: %v\n", err)
		return protocol.ExitCodeInitError
	}
	sig := unix.SignalNum(*stopSig)
	if sig == 0 {
		return fail(fmt.Errorf("unknown stop signal %q", *stopSig))
	}
	cred := &syscall.Credential{Uid: uint32(*uid), Gid: uint32(*gid)}
	if *groups != "" {
		for _, g := range strings.Split(*groups, ",") {
			n, err := strconv.Atoi(g)
			if err != nil {
				return fail(fmt.Errorf("-groups %q: %v", *groups, err))
			}
			cred.Groups = append(cred.Groups, uint32(n))
		}
	}
	// Any stop signal from the init (its stop request, or SIGTERM/SIGINT
	// forwarded) stops the program with the spec's signal.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	stop := make(chan struct{})
	go func() {
		<-sigs
		close(stop)
	}()
	m, err := trace.Run(context.Background(), trace.Options{
		Program:    fl.Arg(0),
		Args:       fl.Args()[1:],
		Env:        os.Environ(),
		Stdout:     stdout,
		Stderr:     stderr,
		Log:        stderr,
		Grace:      *grace,
		Credential: cred,
		StopSignal: sig,
		Stop:       stop,
		// Every error counted: verify tells ENOSYS and the like apart.
		AllResults: true,
	})
	if err != nil {
		return fail(err)
	}
	var b bytes.Buffer
	if err := m.Encode(&b); err != nil {
		return fail(err)
	}
	if err := protocol.WriteBlob(stdout, protocol.BlobTrace, b.Bytes()); err != nil {
		return fail(err)
	}
	if m.Exit == nil {
		return 0
	}
	return m.Exit.Code
}
