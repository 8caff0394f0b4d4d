package guestinit

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bespoke-os/bespoke/internal/guestinit/lite"
	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"golang.org/x/sys/unix"
)

// Main runs the init. It never returns: PID 1 exiting panics the kernel.
// It ends by rebooting, which with the kernel's "reboot=t panic=-1" and
// QEMU's -no-reboot ends the VM.
func Main() {
	if os.Getpid() != 1 {
		os.Stderr.WriteString(errNotPID1.Error() + "\n")
		os.Exit(2)
	}
	ev := func() (ev protocol.Event) {
		defer func() {
			if r := recover(); r != nil {
				ev = failed(lite.Errorf("panic: %v", r))
			}
		}()
		ev, err := run()
		if err != nil {
			return failed(err)
		}
		return ev
	}()
	ev.Uptime = uptime()
	say(ev)
	unix.Sync()
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	warnf("reboot: %v; halting here", err)
	for {
		time.Sleep(time.Hour)
	}
}

// failed prints the error marker and returns the exit event for it.
func failed(err error) protocol.Event {
	say(protocol.Event{Kind: protocol.EventError, Msg: err.Error(), Uptime: uptime()})
	return protocol.Event{Kind: protocol.EventExit, Code: protocol.ExitCodeInitError}
}

// say prints a marker line on the console.
func say(e protocol.Event) { os.Stdout.WriteString(e.Format() + "\n") }

func warnf(format string, args ...any) {
	os.Stdout.WriteString(protocol.MarkerPrefix + "warning: " + lite.Sprintf(format, args...) + "\n")
}

// uptime returns the guest's seconds since boot: CLOCK_BOOTTIME, the
// clock /proc/uptime shows, readable before /proc is mounted.
func uptime() float64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

func run() (protocol.Event, error) {
	// Ctrl-Alt-Del sends SIGINT to init instead of rebooting.
	unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	unix.Umask(0o022)
	if list, err := os.ReadFile(protocol.Stage0File); err == nil {
		return protocol.Event{}, stage0(string(list)) // runs the root's /init
	}
	say(protocol.Event{Kind: protocol.EventStarted, Uptime: uptime()})
	if err := writableRoot(); err != nil {
		return protocol.Event{}, err
	}
	if err := mountBase(); err != nil {
		return protocol.Event{}, err
	}
	ensureConsole()

	f, err := os.Open(protocol.ConfigPath)
	if err != nil {
		return protocol.Event{}, lite.Errorf("reading the init config: %w", err)
	}
	cfg, err := DecodeConfig(f)
	f.Close()
	if err != nil {
		return protocol.Event{}, err
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return protocol.Event{}, lite.Errorf("reading the kernel command line: %w", err)
	}
	home := "/"
	if pw, err := os.Open("/etc/passwd"); err == nil {
		home = HomeOf(pw, cfg.Uid)
		pw.Close()
	}
	plan, err := MakePlan(cfg, string(bytes.TrimSpace(cmdline)), home)
	if err != nil {
		return protocol.Event{}, err
	}
	if plan.Hostname != "" {
		if err := unix.Sethostname([]byte(plan.Hostname)); err != nil {
			warnf("setting the hostname: %v", err)
		}
	}
	if err := setupNet(plan.Net); err != nil {
		return protocol.Event{}, err
	}
	if err := mountVolumes(plan.Volumes); err != nil {
		return protocol.Event{}, err
	}
	for _, d := range cfg.Dirs {
		if err := makeDir(d); err != nil {
			return protocol.Event{}, err
		}
	}
	for _, m := range cfg.Mounts {
		if err := mountExtra(m); err != nil {
			return protocol.Event{}, err
		}
	}
	if err := setRlimits(cfg.Rlimits); err != nil {
		return protocol.Event{}, err
	}
	if cfg.State != "" {
		watchState(cfg.State, plan.Volumes)
	}
	for _, nr := range plan.ProbeSyscalls {
		_, _, errno := unix.Syscall6(uintptr(nr), 0, 0, 0, 0, 0, 0)
		result := "ok"
		if errno != 0 {
			result = unix.ErrnoName(errno)
		}
		os.Stdout.WriteString(lite.Sprintf("%s%d %s\n", protocol.ProbeMarker, nr, result))
	}
	if plan.Gcov {
		if err := unix.Mount("debugfs", "/sys/kernel/debug", "debugfs", 0, ""); err != nil {
			return protocol.Event{}, lite.Errorf("mounting debugfs for %s: %w (the kernel needs DEBUG_FS and GCOV_KERNEL)", protocol.ParamGcov, err)
		}
		defer sendGcov()
	}
	timeout := time.Duration(cfg.StopTimeoutSec) * time.Second
	if timeout <= 0 {
		timeout = DefaultStopTimeoutSec * time.Second
	}
	watchFaults()
	return supervise(plan, timeout)
}

// ensureConsole opens /dev/console as stdin, stdout and stderr when the
// kernel could not (no /dev/console in the initramfs).
func ensureConsole() {
	if _, err := unix.FcntlInt(1, unix.F_GETFD, 0); err == nil {
		return
	}
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return
	}
	for _, n := range []int{0, 1, 2} {
		if n != fd {
			unix.Dup2(fd, n)
		}
	}
	if fd > 2 {
		unix.Close(fd)
	}
}

func makeDir(d protocol.Dir) error {
	mode := d.Mode
	if mode == 0 {
		mode = 0o755
	}
	if err := os.MkdirAll(d.Path, 0o755); err != nil {
		return lite.Errorf("creating %s: %w", d.Path, err)
	}
	if err := unix.Chmod(d.Path, mode); err != nil {
		return lite.Errorf("creating %s: %w", d.Path, err)
	}
	if err := unix.Lchown(d.Path, d.Uid, d.Gid); err != nil {
		return lite.Errorf("creating %s: %w", d.Path, err)
	}
	return nil
}

// rlimits maps Config.Rlimits names to resources.
var rlimits = map[string]int{
	"AS":         unix.RLIMIT_AS,
	"CORE":       unix.RLIMIT_CORE,
	"CPU":        unix.RLIMIT_CPU,
	"DATA":       unix.RLIMIT_DATA,
	"FSIZE":      unix.RLIMIT_FSIZE,
	"LOCKS":      unix.RLIMIT_LOCKS,
	"MEMLOCK":    unix.RLIMIT_MEMLOCK,
	"MSGQUEUE":   unix.RLIMIT_MSGQUEUE,
	"NICE":       unix.RLIMIT_NICE,
	"NOFILE":     unix.RLIMIT_NOFILE,
	"NPROC":      unix.RLIMIT_NPROC,
	"RSS":        unix.RLIMIT_RSS,
	"RTPRIO":     unix.RLIMIT_RTPRIO,
	"RTTIME":     unix.RLIMIT_RTTIME,
	"SIGPENDING": unix.RLIMIT_SIGPENDING,
	"STACK":      unix.RLIMIT_STACK,
}

// RlimitResource returns the resource for a name such as "NOFILE" or
// "RLIMIT_NOFILE".
func RlimitResource(name string) (int, error) {
	r, ok := rlimits[strings.TrimPrefix(strings.ToUpper(name), "RLIMIT_")]
	if !ok {
		return 0, lite.Errorf("unknown rlimit %q", name)
	}
	return r, nil
}

func setRlimits(limits map[string]uint64) error {
	names := make([]string, 0, len(limits))
	for n := range limits {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		res, err := RlimitResource(n)
		if err != nil {
			return err
		}
		v := limits[n]
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: v, Max: v}); err != nil {
			return lite.Errorf("setting rlimit %s to %d: %w", n, v, err)
		}
	}
	return nil
}

// faults reports the kernel's reports of user faults (/dev/kmsg), each
// once, as an EventFault: "traps: redis-server[38] trap int3 ip:7f..
// sp:7ff.. error:0 in libc.so.6[3c050,7f..+..]", "x[9]: segfault at 0 ip
// ...". The kernel writes them at KERN_INFO, below the console's level,
// for a fatal signal the process did not handle: the program's, a
// thread's, a worker's. nil until watchFaults.
var faults *faultLog

type faultLog struct {
	mu    sync.Mutex
	after uint64 // records up to this sequence number came before
	seen  map[uint64]bool
}

// watchFaults starts reporting the faults from now on: as they come, and
// on drain (the program died: its fault is reported before its exit,
// whichever of the two readers gets it first).
func watchFaults() {
	f := &faultLog{seen: map[uint64]bool{}}
	readKmsg(unix.O_NONBLOCK, func(seq uint64, _ string) { f.after = max(f.after, seq) })
	faults = f
	go readKmsg(0, f.report)
}

// drain reports the faults in the log not yet reported.
func (f *faultLog) drain() {
	if f != nil {
		readKmsg(unix.O_NONBLOCK, f.report)
	}
}

func (f *faultLog) report(seq uint64, msg string) {
	if !IsFault(msg) {
		return
	}
	f.mu.Lock()
	dup := seq <= f.after || f.seen[seq]
	f.seen[seq] = true
	f.mu.Unlock()
	if !dup {
		say(protocol.Event{Kind: protocol.EventFault, Msg: msg, Uptime: uptime()})
	}
}

// readKmsg calls fn with each record of the kernel's log, from the
// oldest: to its end with O_NONBLOCK, else for ever. Raw syscalls: an
// *os.File would go through Go's poller, which /dev/kmsg does not suit.
func readKmsg(flags int, fn func(seq uint64, msg string)) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_CLOEXEC|flags, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EPIPE || err == unix.EINTR {
			continue // records overwritten since the last read
		}
		if err != nil || n <= 0 {
			return
		}
		// "PRI,SEQ,TS,FLAGS;MESSAGE\n" and continuation lines.
		head, msg, ok := strings.Cut(string(buf[:n]), ";")
		if !ok {
			continue
		}
		f := strings.Split(head, ",")
		if len(f) < 2 {
			continue
		}
		seq, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		msg, _, _ = strings.Cut(msg, "\n")
		fn(seq, msg)
	}
}

// IsFault reports whether a kernel log message reports a user fault.
func IsFault(msg string) bool {
	return strings.HasPrefix(msg, "traps: ") || strings.Contains(msg, "]: segfault at ")
}

// ExitEvent returns the exit marker for a wait status.
func ExitEvent(ws syscall.WaitStatus) protocol.Event {
	e := protocol.Event{Kind: protocol.EventExit}
	if ws.Signaled() {
		e.Signal = SignalName(ws.Signal())
		e.Code = ExitCode(false, 0, int(ws.Signal()))
	} else {
		e.Code = ExitCode(true, ws.ExitStatus(), 0)
	}
	return e
}

// SignalName returns "SIGSEGV" for signal 11, or "SIG<n>" for a signal
// with no name (real-time signals).
func SignalName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return lite.Sprintf("SIG%d", int(s))
}

// supervise starts the program, reaps every child (init adopts orphans),
// forwards SIGTERM and SIGINT, and returns the program's exit marker.
func supervise(p Plan, timeout time.Duration) (protocol.Event, error) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGCHLD, unix.SIGTERM, unix.SIGINT)

	devnull, err := os.Open("/dev/null")
	if err != nil {
		return protocol.Event{}, lite.Errorf("opening /dev/null: %w", err)
	}
	groups := make([]uint32, len(p.Groups))
	for i, g := range p.Groups {
		groups[i] = uint32(g)
	}
	sys := &syscall.SysProcAttr{Setsid: true}
	path, argv := p.Path, p.Argv
	if p.Tracer != "" {
		// The tracer stays root and sets the program's credentials itself;
		// it needs time after the program's end to send the trace.
		path, argv = p.Tracer, p.TracerArgv
		timeout += tracerGrace
	} else if os.Getuid() == 0 || p.Uid != os.Getuid() || p.Gid != os.Getgid() || len(groups) > 0 {
		// PID 1 is root and always sets the credentials; a test running
		// unprivileged as the same user cannot (setgroups needs CAP_SETGID).
		sys.Credential = &syscall.Credential{Uid: uint32(p.Uid), Gid: uint32(p.Gid), Groups: groups}
	}
	stops := make(chan struct{}, 1)
	times := make(chan time.Time, 1)
	go readRequests(os.Stdin, stops, times, p.Gcov)
	if p.Clock {
		setClock(times)
	}
	attr := &syscall.ProcAttr{
		Dir:   p.Dir,
		Env:   p.Env,
		Files: []uintptr{devnull.Fd(), 1, 2},
		Sys:   sys,
	}
	var pid int
	said := make(chan struct{}) // the exec event is out
	defer closeOnce(said)
	if p.Seccomp != "" && p.Tracer == "" {
		pid, err = startFiltered(p, attr, said)
		if err != nil && pid > 0 {
			reapNow(pid)
		}
	} else {
		pid, err = syscall.ForkExec(path, argv, attr)
	}
	devnull.Close()
	if err != nil {
		return protocol.Event{}, lite.Errorf("starting %s: %w", path, err)
	}
	say(protocol.Event{Kind: protocol.EventExec, Pid: pid, Uptime: uptime()})
	closeOnce(said)

	var kill <-chan time.Time
	for {
		if ws, done := reap(pid); done {
			if ws.Signaled() {
				faults.drain()
			}
			return ExitEvent(ws), nil
		}
		select {
		case s := <-sigs:
			if s == unix.SIGCHLD {
				continue
			}
			unix.Kill(pid, s.(syscall.Signal))
			if kill == nil {
				kill = time.After(timeout)
			}
		case <-stops:
			unix.Kill(pid, p.StopSignal)
			if kill == nil {
				kill = time.After(timeout)
			}
		case <-kill:
			warnf("%s did not stop %v after the signal: killing it", p.Path, timeout)
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// reapNow waits for pid, which was just killed.
func reapNow(pid int) {
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
			return
		}
	}
}

// reap collects every exited child and reports whether pid was one.
func reap(pid int) (syscall.WaitStatus, bool) {
	var status syscall.WaitStatus
	found := false
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || wpid <= 0 {
			return status, found
		}
		if wpid == pid {
			status, found = ws, true
		}
	}
}

// tracerGrace is the time the tracer gets, beyond the stop timeout, to
// send the trace after the program ended.
const tracerGrace = 60 * time.Second

// readRequests reads the console and sends on stops for each
// protocol.StopRequest line the host writes; with gcov, it zeroes the
// kernel's gcov counters on a protocol.GcovResetRequest and says so. It
// turns the console's echo off first, so a request does not come back to
// the host.
func readRequests(console *os.File, stops chan<- struct{}, times chan<- time.Time, gcov bool) {
	if t, err := unix.IoctlGetTermios(int(console.Fd()), unix.TCGETS); err == nil {
		t.Lflag &^= unix.ECHO | unix.ECHONL
		unix.IoctlSetTermios(int(console.Fd()), unix.TCSETS, t)
	}
	sc := bufio.NewScanner(console)
	for sc.Scan() {
		switch line := sc.Text(); {
		case strings.Contains(line, protocol.StopRequest):
			select {
			case stops <- struct{}{}:
			default:
			}
		case strings.Contains(line, protocol.TimeReply):
			if t, ok := protocol.ParseTime(line); ok {
				select {
				case times <- t:
				default:
				}
			}
		case gcov && strings.Contains(line, protocol.GcovResetRequest):
			if err := os.WriteFile(protocol.GcovDir+"/reset", []byte("1\n"), 0); err != nil {
				warnf("resetting the gcov counters: %v", err)
				continue
			}
			say(protocol.Event{Kind: protocol.EventAck, Msg: protocol.GcovReset, Uptime: uptime()})
		}
	}
}

// clockWait bounds the wait for the host's time; clockSamples is how many
// exchanges setClock makes at most, keeping the one with the shortest
// round trip (its midpoint is the surest); a round trip under
// clockGoodRTT ends it early.
const (
	clockWait    = 2 * time.Second
	clockSamples = 3
	clockGoodRTT = 5 * time.Millisecond
)

// setClock asks the host for its time (an EventClock) and sets the guest's
// clock to it plus half the round trip, the host's answer being taken
// halfway. Without an answer the clock stays as the RTC set it.
func setClock(times <-chan time.Time) {
	var best struct {
		rtt    time.Duration
		host   time.Time
		at     time.Time // monotonic: setting the clock does not move it
		sample bool
	}
	for i := 0; i < clockSamples; i++ {
		select { // a late answer to an earlier ask would read as a short round trip
		case <-times:
		default:
		}
		asked := time.Now()
		say(protocol.Event{Kind: protocol.EventClock, Uptime: uptime()})
		select {
		case host := <-times:
			now := time.Now()
			if rtt := now.Sub(asked); !best.sample || rtt < best.rtt {
				best.rtt, best.host, best.at, best.sample = rtt, host, now, true
			}
		case <-time.After(clockWait):
		}
		if !best.sample {
			warnf("the host did not send its time within %v: the clock stays as the RTC set it", clockWait)
			return
		}
		if best.rtt < clockGoodRTT || best.at.Before(asked) {
			break // good enough, or this ask went unanswered
		}
	}
	was := time.Now()
	now := best.host.Add(best.rtt/2 + was.Sub(best.at))
	ts := unix.NsecToTimespec(now.UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		warnf("setting the clock from the host's: %v", err)
		return
	}
	os.Stdout.WriteString(lite.Sprintf("init: clock set from the host's: moved %+.3fs (round trip %.1f ms)\n", now.Sub(was.Round(0)).Seconds(), float64(best.rtt)/1e6))
	say(protocol.Event{Kind: protocol.EventAck, Msg: protocol.ClockSet, Uptime: uptime()})
}

// sendGcov sends every .gcda file under protocol.GcovDir to the host as
// the protocol.BlobGcov tar archive. debugfs reports each file's size as
// 0, so each is read whole before it is stored.
func sendGcov() {
	var tar []byte
	n := 0
	err := filepath.WalkDir(protocol.GcovDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !strings.HasSuffix(p, ".gcda") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err == nil {
			tar, err = AppendTar(tar, strings.TrimPrefix(p, protocol.GcovDir+"/"), data)
		}
		if err != nil {
			warnf("reading %s: %v", p, err)
			return nil
		}
		n++
		return nil
	})
	if err == nil {
		tar = EndTar(tar)
		err = protocol.WriteBlobZeros(os.Stdout, protocol.BlobGcov, tar)
	}
	if err != nil {
		warnf("sending the gcov data: %v", err)
		return
	}
	os.Stdout.WriteString(lite.Sprintf("%snote: sent %d .gcda files (%d bytes)\n", protocol.MarkerPrefix, n, len(tar)))
}

// stateEvery is how often the init looks at the state directory's room:
// a database fills the last megabytes of a tmpfs in well under a second
// under TCG, then frees some when its write fails (StateInfo.Full).
const stateEvery = 100 * time.Millisecond

// watchState says how much room the state directory dir has
// (EventState), then watches it and says when it is full
// (EventStateFull), once until it has room again.
func watchState(dir string, vols []protocol.Volume) {
	where := protocol.StateMemory
	for _, v := range vols {
		if dir == v.Target || strings.HasPrefix(dir, strings.TrimSuffix(v.Target, "/")+"/") {
			where = protocol.StateVolume
		}
	}
	room := func() (protocol.StateInfo, bool) {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return protocol.StateInfo{}, false
		}
		bs := uint64(st.Bsize)
		return protocol.StateInfo{Where: where, Total: st.Blocks * bs, Free: st.Bavail * bs, Path: dir}, true
	}
	info, ok := room()
	if !ok {
		warnf("state directory %s: cannot read its room", dir)
		return
	}
	say(protocol.Event{Kind: protocol.EventState, Msg: info.String(), Uptime: uptime()})
	go func() {
		full := false
		for range time.Tick(stateEvery) {
			info, ok := room()
			switch {
			case !ok:
			case !full && info.Full():
				full = true
				say(protocol.Event{Kind: protocol.EventStateFull, Msg: info.String(), Uptime: uptime()})
			case full && info.Free > 2*info.FullBelow():
				full = false
			}
		}
	}()
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}
