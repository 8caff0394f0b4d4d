package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bespoke-os/bespoke/internal/child"
	"github.com/bespoke-os/bespoke/internal/flock"
	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/bespoke-os/bespoke/internal/libshake"
)

// Result is what one boot did.
type Result struct {
	// ExitCode is the program's exit status from the init's exit marker
	// (128+n when a signal ended it), protocol.ExitCodeInitError when the
	// init failed, or -1 when the guest never said.
	ExitCode int
	Signal   string // the signal that ended the program, if any
	// Stopped says bespoke stopped the VM: after OnReady returned, on
	// Timeout, on cancellation, or when the guest did not power off after
	// the program's exit.
	Stopped bool
	Ports   []PortMap // forwards, with the host ports chosen
	Accel   string    // "kvm" or "tcg"
	Command []string  // QEMU's argv
	LogPath string    // the console log
	Boot    Timing
	// StopRequested says bespoke asked the guest to stop the program
	// (Config.StopGuest); ExitCode is then the status it stopped with.
	StopRequested bool
	// Blobs holds the files the guest sent over the console.
	Blobs *protocol.Blobs
	// Faults are the kernel's reports of the faults the program died of
	// ("traps: redis-server[38] trap int3 ip:... in libc.so.6[...]").
	Faults []string
	// Removed are the functions --shake-libs removed that the faults
	// hit (the image's shake-map.json).
	Removed []libshake.Removal
	// Seccomp are the syscalls the program made outside the image's
	// seccomp allowlist, each once.
	Seccomp []SeccompEvent
	// State is the room of the program's state directory when it started
	// (nil: the image has none), and StateFull its room when it first
	// filled up (nil: it did not).
	State, StateFull *protocol.StateInfo
}

// Timing holds boot times. Host times run from QEMU's start; guest times
// are the guest's uptime in the init's markers. Zero means not seen.
type Timing struct {
	Kernel time.Duration // first console output before the init (the kernel's; hidden by "quiet")
	Init   time.Duration // the init's started marker
	Exec   time.Duration // the program's start (exec marker)
	Ready  time.Duration // the program is ready (see ReadyBy)
	// ReadyBy says what made the guest ready: "tcp:GUESTPORT" (a probe
	// connection was kept), "log" (the ready regex), "exec" (no condition:
	// the program's start).
	ReadyBy string
	Exit    time.Duration // the program's exit (or the init's error)
	Total   time.Duration // QEMU's whole life

	GuestInit, GuestExec, GuestExit time.Duration
}

// String formats the boot times as "kernel 0.41s, /init 1.02s (guest
// 0.62s), ready 1.30s".
func (t Timing) String() string {
	var parts []string
	if t.Kernel > 0 {
		parts = append(parts, "kernel "+secs(t.Kernel))
	}
	if t.Init > 0 {
		s := "/init " + secs(t.Init)
		if t.GuestInit > 0 {
			s += " (guest " + secs(t.GuestInit) + ")"
		}
		parts = append(parts, s)
	}
	if t.Ready > 0 && t.ReadyBy != "exec" {
		parts = append(parts, fmt.Sprintf("ready %s (%s)", secs(t.Ready), t.ReadyBy))
	}
	if len(parts) == 0 {
		return "no boot markers seen"
	}
	return strings.Join(parts, ", ")
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// Errors Run returns, wrapped with the console's last lines and log path.
var (
	// ErrNoExitStatus: QEMU ended but the init never reported the
	// program's exit (a kernel panic, a crash of QEMU, a missing init).
	ErrNoExitStatus = errors.New("guest ended without the program's exit status")
	// ErrTimeout: Config.Timeout passed; the VM was stopped.
	ErrTimeout = errors.New("timed out")
)

// InitError is the guest init's report that it could not start the
// program (the error marker). Run's Result then has ExitCode
// protocol.ExitCodeInitError.
type InitError struct {
	Msg     string
	Tail    []string
	LogPath string
}

func (e *InitError) Error() string {
	return "guest init failed: " + e.Msg + formatTail(e.Tail, e.LogPath)
}

func formatTail(tail []string, logPath string) string {
	var b strings.Builder
	if len(tail) > 0 {
		b.WriteString("\nlast console lines:\n")
		for _, l := range tail {
			b.WriteString("  | " + l + "\n")
		}
	} else {
		b.WriteString("\n(the console stayed empty)\n")
	}
	fmt.Fprintf(&b, "console log: %s", logPath)
	return b.String()
}

// Grace periods, variables for tests.
var (
	// stopGrace is how long QEMU gets to exit after SIGTERM before SIGKILL.
	stopGrace = 3 * time.Second
	// exitGrace is how long the guest gets to power off after the
	// program's exit before bespoke stops it.
	exitGrace = 10 * time.Second
)

// Run boots the image described by cfg and waits until the VM ends: the
// program exits (Result.ExitCode), OnReady returns, cfg.Timeout passes or
// ctx is cancelled. QEMU never outlives Run, nor bespoke's process.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	p, err := newPlan(cfg)
	if err != nil {
		return nil, err
	}
	for _, f := range []string{p.kernel, p.initrd} {
		if f == "" {
			continue // a disk root has no initramfs
		}
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("checking image: %w: rebuild the image with 'bespoke build'", err)
		}
	}
	if p.img.Disk != "" && cfg.Initramfs == "" {
		if err := CheckRootDisk(filepath.Join(cfg.ImageDir, p.img.Disk)); err != nil {
			return nil, fmt.Errorf("checking image: %w", err)
		}
	}
	qemuPath, err := exec.LookPath(p.args[0])
	if err != nil {
		return nil, fmt.Errorf("finding QEMU: %w: install qemu-system-x86 ('make deps')", err)
	}
	status := cfg.Status
	if status == nil {
		status = io.Discard
	}
	logf, logPath, err := openLog(cfg, status)
	if err != nil {
		return nil, err
	}
	defer logf.Close()

	res := &Result{ExitCode: -1, Ports: p.ports, Accel: p.accel, Command: p.args, LogPath: logPath, Blobs: &protocol.Blobs{}}
	name := p.img.Name
	if name == "" {
		name = filepath.Base(cfg.ImageDir)
	}
	fmt.Fprintf(status, "bespoke: booting %s (%s, %s, %d MiB, %d CPU); console log: %s\n", name, p.img.Target, p.accel, p.memoryMB, p.cpus, logPath)
	if p.accelNote != "" {
		fmt.Fprintf(status, "bespoke: %s\n", p.accelNote)
	}
	for _, f := range p.ports {
		fmt.Fprintf(status, "bespoke: port %s\n", f)
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting QEMU: %w", err)
	}
	cmd := exec.Command(qemuPath, p.args[1:]...)
	cmd.Args[0] = p.args[0]
	// QEMU never touches the user's terminal: its stdin, the guest's
	// serial input, is a pipe for the host's time, the requests and the
	// stop request.
	askStop := cfg.StopGuest || len(cfg.ReadyRequests) > 0
	guestOut, guestIn, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting QEMU: %w", err)
	}
	defer guestOut.Close()
	defer guestIn.Close()
	cmd.Stdin = guestOut
	cmd.Stdout = pw
	qerr := &tailBuffer{max: 4096}
	cmd.Stderr = qerr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // Ctrl-C reaches bespoke only; bespoke stops QEMU
		Pdeathsig: syscall.SIGKILL, // bespoke killed: QEMU goes too (see child.Start)
	}
	cmd.WaitDelay = time.Second

	start := time.Now()
	con := newConsole(start, p.ready.re, res.Blobs)
	con.onClock = func() { guestIn.WriteString(protocol.FormatTime(time.Now()) + "\n") }
	var shakeMap *libshake.Map
	if cfg.ImageDir != "" {
		if shakeMap, err = libshake.ReadMap(filepath.Join(cfg.ImageDir, libshake.MapFile)); err != nil {
			fmt.Fprintf(status, "bespoke: %v\n", err)
		}
	}
	con.onFault = func(msg string) {
		res.Faults = append(res.Faults, msg)
		fmt.Fprintf(status, "bespoke: the kernel: %s\n", msg)
		if r, ok := shakeMap.Fault(msg); ok {
			res.Removed = append(res.Removed, r)
			fmt.Fprintf(status, "bespoke: the program called %s, which --shake-libs removed from the image (%s): bespoke verify --fix restores it, or build with shake_libs: off\n", r, libshake.MapFile)
		}
	}
	con.onSeccomp = func(e SeccompEvent) { fmt.Fprintf(status, "bespoke: seccomp: %s\n", e) }
	con.onState = func(s protocol.StateInfo, full bool) { fmt.Fprintf(status, "bespoke: %s\n", StateLine(s, full)) }
	waitc, err := child.Start(cmd)
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("starting QEMU: %w", err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(tee{cfg.Console, logf, con}, pr)
		con.Close()
	}()

	var timeout <-chan time.Time
	if cfg.Timeout > 0 {
		t := time.NewTimer(cfg.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	readyc := make(chan readyEvent, 1)
	go watchReady(rctx, p, con, readyc)

	var (
		waitErr      error
		stopped      string // why bespoke stopped the VM
		onReadyDone  chan error
		onReadyErr   error
		printedTimes bool
		graceC       <-chan time.Time
		stopC        <-chan time.Time
		done         = con.done
	)
	stop := func(why string) {
		stopped = why
		res.Stopped = true
		waitErr = stopQEMU(cmd.Process, waitc)
	}
loop:
	for {
		select {
		case waitErr = <-waitc:
			break loop
		case <-ctx.Done():
			stop("cancelled")
			break loop
		case <-timeout:
			stop("timeout")
			break loop
		case r := <-readyc:
			res.Boot.Ready, res.Boot.ReadyBy = r.at.Sub(start), r.by
			con.timing(&res.Boot)
			if r.by != "exec" {
				fmt.Fprintf(status, "bespoke: boot: %s\n", res.Boot)
				printedTimes = true
			}
			if cfg.OnReady != nil || len(cfg.ReadyRequests) > 0 {
				onReadyDone = make(chan error, 1)
				ports := map[int]int{}
				for _, f := range p.ports {
					if f.Proto == "tcp" {
						ports[f.Guest] = f.Host
					}
				}
				go func() {
					if err := request(rctx, guestIn, con, cfg.ReadyRequests); err != nil {
						onReadyDone <- err
						return
					}
					if cfg.OnReady == nil {
						onReadyDone <- nil
						return
					}
					onReadyDone <- cfg.OnReady(rctx, ports)
				}()
			}
		case onReadyErr = <-onReadyDone:
			onReadyDone = nil
			if !askStop || con.Final() != nil {
				stop("ready")
				break loop
			}
			// A clean shutdown: the init stops the program and reboots,
			// which ends QEMU.
			res.Stopped, res.StopRequested = true, true
			stopped = "requested"
			wait := p.stopTimeout + firstPositiveDuration(cfg.StopWait, exitGrace)
			fmt.Fprintf(status, "bespoke: asking the guest to stop the program (up to %v)\n", wait)
			guestIn.WriteString(protocol.StopRequest + "\n")
			stopC = time.After(wait)
		case <-stopC:
			fmt.Fprintf(status, "bespoke: the guest did not stop the program and power off in time: stopping QEMU\n")
			stop("stop timeout")
			break loop
		case <-done:
			done = nil
			graceC = time.After(exitGrace)
		case <-graceC:
			if stopC != nil {
				continue // the stop request's own deadline applies
			}
			fmt.Fprintf(status, "bespoke: the guest did not power off %v after the program ended: stopping QEMU\n", exitGrace)
			stop("no poweroff")
			break loop
		}
	}
	res.Boot.Total = time.Since(start)
	rcancel()
	if onReadyDone != nil {
		onReadyErr = <-onReadyDone
	}
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
		pr.Close() // something else holds QEMU's stdout open
		<-copied
	}
	pr.Close()
	ready, by := res.Boot.Ready, res.Boot.ReadyBy
	con.timing(&res.Boot)
	res.Boot.Ready, res.Boot.ReadyBy = ready, by
	// The console is read a little after QEMU writes it: on a loaded
	// host its last line may be read after QEMU's exit was seen (seen:
	// exit 612.24 ms, QEMU gone at 612.19 ms). Nothing ends after QEMU.
	res.Boot.Total = max(res.Boot.Total, res.Boot.Exit)
	if !printedTimes && (res.Boot.Init > 0 || res.Boot.Kernel > 0) {
		fmt.Fprintf(status, "bespoke: boot: %s\n", res.Boot)
	}

	res.Seccomp = con.seccomp()
	res.State, res.StateFull = con.state()
	tail := con.Tail()
	final := con.Final()
	if onReadyErr != nil {
		onReadyErr = fmt.Errorf("running against the ready guest: %w", onReadyErr)
	}
	switch {
	case final != nil && final.Kind == protocol.EventExit:
		res.ExitCode, res.Signal = final.Code, final.Signal
		return res, onReadyErr
	case final != nil && final.Kind == protocol.EventError:
		res.ExitCode = protocol.ExitCodeInitError
		return res, &InitError{Msg: final.Msg, Tail: tail, LogPath: logPath}
	case stopped == "ready":
		return res, onReadyErr
	case stopped == "stop timeout":
		err := fmt.Errorf("%w: the program did not stop within %v of the stop request (its stop signal and stop_timeout), or the guest did not power off%s",
			ErrTimeout, p.stopTimeout, formatTail(tail, logPath))
		if onReadyErr != nil {
			err = errors.Join(onReadyErr, err)
		}
		return res, err
	case stopped == "cancelled":
		return res, fmt.Errorf("stopped the VM: %w (console log: %s)", context.Cause(ctx), logPath)
	case stopped == "timeout":
		return res, fmt.Errorf("%w: the guest still ran after %v: stopped it%s", ErrTimeout, cfg.Timeout, formatTail(tail, logPath))
	}
	if onReadyErr != nil {
		return res, onReadyErr
	}
	why := "kernel panic, or no init?"
	if waitErr != nil || qerr.Len() > 0 {
		why = fmt.Sprintf("QEMU: %v", waitErr)
		if waitErr == nil {
			why = "QEMU exited"
		}
		if s := strings.TrimSpace(qerr.String()); s != "" {
			why += ": " + s
		}
	}
	return res, fmt.Errorf("%w (%s)%s", ErrNoExitStatus, why, formatTail(tail, logPath))
}

// requestTimeout bounds the wait for the init's ack of a request.
var requestTimeout = 30 * time.Second

// request writes each request to the guest's console and waits for its ack.
func request(ctx context.Context, guestIn *os.File, con *console, reqs []Request) error {
	for _, r := range reqs {
		if _, err := guestIn.WriteString(r.Line + "\n"); err != nil {
			return fmt.Errorf("writing to the guest console: %w", err)
		}
		select {
		case <-con.acked(r.Ack):
		case <-con.done:
			return fmt.Errorf("the program ended before the guest init acked %q", r.Ack)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(requestTimeout):
			return fmt.Errorf("the guest init did not ack %q within %v", r.Ack, requestTimeout)
		}
	}
	return nil
}

func firstPositiveDuration(d ...time.Duration) time.Duration {
	for _, v := range d {
		if v > 0 {
			return v
		}
	}
	return 0
}

// stopQEMU sends QEMU SIGTERM, then SIGKILL after stopGrace, and returns
// its exit.
func stopQEMU(p *os.Process, waitc <-chan error) error {
	p.Signal(syscall.SIGTERM)
	select {
	case err := <-waitc:
		return err
	case <-time.After(stopGrace):
	}
	p.Kill()
	return <-waitc
}

// watchReady sends on readyc once the guest is ready: the ready regex
// matched, or a forwarded TCP port accepted a probe after the program
// started (before that, the guest's network may not be up and QEMU keeps
// probe connections open while it waits for the guest), or, with neither,
// the program started.
func watchReady(ctx context.Context, p *plan, con *console, readyc chan<- readyEvent) {
	if p.ready.re != nil {
		select {
		case <-con.logReady:
			readyc <- readyEvent{"log", time.Now()}
		case <-ctx.Done():
		}
		return
	}
	select {
	case <-con.exec:
	case <-ctx.Done():
		return
	}
	var probes []PortMap
	for _, f := range p.ports {
		if f.Proto == "tcp" && (p.ready.tcpPort == 0 || p.ready.tcpPort == f.Guest) {
			probes = append(probes, f)
		}
	}
	if len(probes) == 0 {
		readyc <- readyEvent{"exec", time.Now()}
		return
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	first := make(chan readyEvent, len(probes))
	for _, f := range probes {
		go func() {
			if at, err := probeTCP(pctx, fmt.Sprintf("127.0.0.1:%d", f.Host)); err == nil {
				first <- readyEvent{fmt.Sprintf("tcp:%d", f.Guest), at}
			}
		}()
	}
	select {
	case r := <-first:
		readyc <- r
	case <-ctx.Done():
	}
}

// readyEvent says what made the guest ready, and when.
type readyEvent struct {
	by string
	at time.Time
}

// openLog creates the console log: cfg.LogPath, else ImageDir/console.log
// (console.N.log when another run of the image holds console.log), else (a
// read-only image) a new temporary directory's console.log.
func openLog(cfg Config, status io.Writer) (*os.File, string, error) {
	if cfg.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.LogPath), 0o755); err != nil {
			return nil, "", fmt.Errorf("creating the console log: %w", err)
		}
		f, err := os.Create(cfg.LogPath)
		if err != nil {
			return nil, "", fmt.Errorf("creating the console log: %w", err)
		}
		return f, cfg.LogPath, nil
	}
	var (
		path string
		f    *os.File
		err  error
	)
	for n := 0; n < 100; n++ {
		path = filepath.Join(cfg.ImageDir, "console.log")
		if n > 0 {
			path = filepath.Join(cfg.ImageDir, fmt.Sprintf("console.%d.log", n))
		}
		if f, err = lockedLog(path); f != nil || err != nil {
			break
		}
	}
	if f != nil {
		return f, path, nil
	}
	dir, derr := os.MkdirTemp("", "bespoke-run-")
	if derr != nil {
		return nil, "", fmt.Errorf("creating the console log: %w (and %v)", err, derr)
	}
	path = filepath.Join(dir, "console.log")
	if f, err = os.Create(path); err != nil {
		return nil, "", fmt.Errorf("creating the console log: %w", err)
	}
	return f, path, nil
}

// lockedLog opens path as a console log that this run alone writes: it
// is flock'ed while open, and truncated once locked. It returns nil and
// no error when another run holds it.
func lockedLog(path string) (*os.File, error) {
	f, err := flock.TryLock(path)
	if f == nil {
		return nil, err
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// tee writes to each non-nil writer, ignoring their errors: a closed
// terminal must not stop the console from being read (QEMU would block).
type tee []io.Writer

func (t tee) Write(p []byte) (int, error) {
	for _, w := range t {
		if w != nil {
			w.Write(p)
		}
	}
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func (t *tailBuffer) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.b)
}
