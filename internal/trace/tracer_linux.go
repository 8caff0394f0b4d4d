//go:build linux && amd64

package trace

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	wNOTHREAD = 0x20000000 // __WNOTHREAD: only this thread's children and tracees

	ptraceOptions = unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_TRACEFORK |
		unix.PTRACE_O_TRACEVFORK | unix.PTRACE_O_TRACEEXEC | unix.PTRACE_O_EXITKILL

	infoEntry   = 1 // PTRACE_SYSCALL_INFO_ENTRY
	infoExit    = 2 // PTRACE_SYSCALL_INFO_EXIT
	infoSeccomp = 3 // PTRACE_SYSCALL_INFO_SECCOMP

	atFDCWD     = -100
	atEmptyPath = 0x1000
	protExec    = 0x4
	mapAnon     = 0x20
	pageSize    = 4096
	maxString   = 4096
	maxArgs     = 1024
)

// syscallInfo is struct ptrace_syscall_info. For an exit, Nr holds rval.
type syscallInfo struct {
	Op      uint8
	_       [3]uint8
	Arch    uint32
	IP      uint64
	SP      uint64
	Nr      uint64
	Args    [6]uint64
	RetData uint32
	_       uint32
}

type task struct {
	tid, tgid int
	started   bool // the initial SIGSTOP of an auto-attached task was seen
	wantExit  bool // stop at the exit of the current syscall
	ev        Event
}

// tracer follows one program and its descendants. Every method but kill
// runs on the one locked OS thread that forked the program.
type tracer struct {
	rec     *recorder
	seccomp bool
	// allResults: every syscall is also stopped at exit (Options.AllResults).
	allResults bool
	root       int
	tasks      map[int]*task
	stub       bool // before the program's first exec (the stub still runs)
	// rootStatus is how the program's first process ended.
	rootStatus *unix.WaitStatus
	execed     bool

	mu   sync.Mutex
	live map[int]int // tid -> tgid, for kill from other goroutines

	buf  [pageSize]byte
	warn func(string)
	// cov, when set, records which functions run (Options.Coverage).
	cov *coverage
}

func newTracer(seccomp bool, warn func(string)) *tracer {
	return &tracer{rec: newRecorder(), seccomp: seccomp, tasks: map[int]*task{}, live: map[int]int{}, warn: warn}
}

// start forks and execs argv under PTRACE_TRACEME, waits for the stop at
// the exec and sets the options. It must run on a locked OS thread, the
// same that then runs loop.
func (t *tracer) start(path string, argv []string, attr *syscall.ProcAttr) error {
	pid, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		return err
	}
	t.root = pid
	var ws unix.WaitStatus
	for {
		_, err = unix.Wait4(pid, &ws, unix.WALL, nil)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return err
	}
	if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
		return &startError{ws}
	}
	opts := ptraceOptions
	if t.seccomp {
		opts |= unix.PTRACE_O_TRACESECCOMP
	}
	if err := unix.PtraceSetOptions(pid, opts); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		unix.Wait4(pid, &ws, unix.WALL, nil)
		return err
	}
	tk := &task{tid: pid, tgid: pid, started: true}
	t.tasks[pid] = tk
	t.live[pid] = pid
	if t.seccomp {
		t.stub = true // the stub execs the program next
	} else {
		// The program itself was exec'ed: record that exec.
		t.execed = true
		if t.cov != nil {
			t.cov.exec(pid)
		}
		t.rec.task(true)
		t.rec.add(&Event{Pid: pid, Tid: pid, Nr: nrExecve, Exited: true, Paths: []string{path}, Argv: argv})
	}
	t.resume(tk, 0)
	return nil
}

type startError struct{ ws unix.WaitStatus }

func (e *startError) Error() string {
	return "unexpected status " + strconv.Itoa(int(e.ws)) + " after exec"
}

// loop handles stops until no tracee is left.
func (t *tracer) loop() {
	for {
		var ws unix.WaitStatus
		tid, err := unix.Wait4(-1, &ws, unix.WALL|wNOTHREAD, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return // ECHILD: every tracee is gone
		}
		t.handle(tid, ws)
	}
}

func (t *tracer) handle(tid int, ws unix.WaitStatus) {
	if ws.Exited() || ws.Signaled() {
		if tid == t.root {
			st := ws
			t.rootStatus = &st
		}
		if tk := t.tasks[tid]; t.cov != nil && tk != nil && tk.tgid == tid {
			t.cov.exit(tid)
		}
		t.remove(tid)
		return
	}
	if !ws.Stopped() {
		return
	}
	tk := t.tasks[tid]
	if tk == nil {
		tk = t.newTask(tid) // stopped before its parent's event was seen
	}
	sig := ws.StopSignal()
	switch {
	case sig == unix.SIGTRAP|0x80:
		t.syscallStop(tk)
	case sig == unix.SIGTRAP && ws.TrapCause() > 0:
		t.eventStop(tk, ws.TrapCause())
	case sig == unix.SIGSTOP && !tk.started:
		tk.started = true
		t.resume(tk, 0)
	default:
		var si [128]byte
		_, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_GETSIGINFO, uintptr(tid), 0, uintptr(unsafe.Pointer(&si[0])), 0, 0)
		if e != 0 {
			t.resume(tk, 0) // a group-stop: let it go on
			return
		}
		if sig == unix.SIGTRAP && t.cov != nil && t.cov.trap(tid, tk.tgid) {
			t.resume(tk, 0) // a coverage breakpoint, undone
			return
		}
		t.resume(tk, sig) // signal-delivery-stop: deliver the signal
	}
}

func (t *tracer) newTask(tid int) *task {
	tk := &task{tid: tid, tgid: readTgid(tid)}
	t.tasks[tid] = tk
	t.mu.Lock()
	t.live[tid] = tk.tgid
	t.mu.Unlock()
	if !t.stub {
		t.rec.task(tk.tgid == tid)
	}
	return tk
}

func (t *tracer) remove(tid int) {
	delete(t.tasks, tid)
	t.mu.Lock()
	delete(t.live, tid)
	t.mu.Unlock()
}

// kill sends sig to every traced process. It may be called from any
// goroutine.
func (t *tracer) kill(sig unix.Signal) {
	t.mu.Lock()
	defer t.mu.Unlock()
	done := map[int]bool{}
	for _, tgid := range t.live {
		if !done[tgid] {
			done[tgid] = true
			unix.Kill(tgid, sig)
		}
	}
}

func (t *tracer) resume(tk *task, sig unix.Signal) {
	req := unix.PTRACE_SYSCALL
	if t.seccomp && !tk.wantExit {
		req = unix.PTRACE_CONT
	}
	unix.RawSyscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tk.tid), 0, uintptr(sig), 0, 0)
}

func (t *tracer) info(tid int) (syscallInfo, bool) {
	var si syscallInfo
	_, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_GET_SYSCALL_INFO, uintptr(tid), unsafe.Sizeof(si), uintptr(unsafe.Pointer(&si)), 0, 0)
	return si, e == 0
}

func (t *tracer) eventStop(tk *task, cause int) {
	switch cause {
	case unix.PTRACE_EVENT_FORK, unix.PTRACE_EVENT_VFORK, unix.PTRACE_EVENT_CLONE:
		if msg, err := unix.PtraceGetEventMsg(tk.tid); err == nil {
			child := t.tasks[int(msg)]
			if child == nil {
				child = t.newTask(int(msg))
			}
			if t.cov != nil && child.tgid != tk.tgid {
				t.cov.fork(tk.tgid, child.tgid, cause == unix.PTRACE_EVENT_VFORK)
			}
		}
	case unix.PTRACE_EVENT_EXEC:
		if msg, err := unix.PtraceGetEventMsg(tk.tid); err == nil && int(msg) != tk.tid {
			// A thread other than the leader exec'ed: it now has the
			// leader's tid, and its pending syscall comes with it.
			if old := t.tasks[int(msg)]; old != nil {
				tk.ev, tk.wantExit = old.ev, old.wantExit
				t.remove(int(msg))
			}
		}
		if t.stub {
			t.stub = false
			t.execed = true
			t.rec.task(true)
		}
		if t.cov != nil && !t.stub {
			t.cov.exec(tk.tgid)
		}
	case unix.PTRACE_EVENT_SECCOMP:
		si, ok := t.info(tk.tid)
		if ok && si.Op == infoSeccomp {
			t.entry(tk, si)
		}
	}
	t.resume(tk, 0)
}

func (t *tracer) syscallStop(tk *task) {
	si, ok := t.info(tk.tid)
	if ok {
		switch si.Op {
		case infoEntry:
			t.entry(tk, si)
		case infoExit:
			if tk.wantExit {
				tk.wantExit = false
				tk.ev.Exited = true
				tk.ev.Ret = int64(si.Nr)
				t.exit(tk)
				if t.cov != nil && tk.ev.Mapped != "" {
					t.cov.arm(tk.tgid)
				}
				t.rec.add(&tk.ev)
				tk.ev = Event{}
			}
		}
	}
	t.resume(tk, 0)
}

// entry handles a syscall entry (or seccomp stop): count it, and read what
// its spec asks for.
func (t *tracer) entry(tk *task, si syscallInfo) {
	nr := int(si.Nr)
	if si.Arch != unix.AUDIT_ARCH_X86_64 {
		nr = compat32 + nr // a 32-bit syscall: kept apart from the x86_64 numbers
	}
	if t.stub && nr != nrExecve {
		return // the stub's last steps before it execs the program
	}
	sp := specFor(nr)
	if sp == nil {
		if t.allResults && !noReturn[nr] {
			tk.ev = Event{Pid: tk.tgid, Tid: tk.tid, Nr: nr, Args: si.Args}
			tk.wantExit = true
			return
		}
		t.rec.count(nr)
		return
	}
	ev := Event{Pid: tk.tgid, Tid: tk.tid, Nr: nr, Args: si.Args}
	t.read(tk, sp, &ev)
	if sp.needExit || t.cov != nil && ev.Mapped != "" {
		tk.ev = ev
		tk.wantExit = true
		return
	}
	t.rec.add(&ev)
}

func (t *tracer) read(tk *task, sp *spec, ev *Event) {
	tid := tk.tid
	a := ev.Args
	dirfd := int64(atFDCWD)
	for i, k := range sp.args {
		switch k {
		case argDirfd:
			dirfd = int64(int32(a[i]))
		case argPath:
			s, ok := t.readString(tid, a[i])
			if ok && s != "" {
				ev.Paths = append(ev.Paths, t.abs(tid, dirfd, s))
			}
			dirfd = atFDCWD
		case argString:
			ev.FSType, _ = t.readString(tid, a[i])
		}
	}
	switch ev.Nr {
	case nrOpen:
		ev.OpenFlags = a[1]
	case nrOpenat:
		ev.OpenFlags = a[2]
	case nrOpenat2:
		var b [8]byte
		if t.readMem(tid, a[2], b[:]) == nil {
			ev.OpenFlags = binary.LittleEndian.Uint64(b[:])
		}
	case nrExecve:
		ev.Argv = t.readArgv(tid, a[1])
	case nrExecveat:
		ev.Argv = t.readArgv(tid, a[2])
		if len(ev.Paths) == 0 && a[4]&atEmptyPath != 0 {
			if p := fdPath(tid, int(int32(a[0]))); p != "" {
				ev.Paths = []string{p}
			}
		}
	case nrBind, nrConnect:
		n := a[2]
		if n > 128 {
			n = 128
		}
		b := make([]byte, n)
		if n >= 2 && t.readMem(tid, a[1], b) == nil {
			if sa, err := DecodeSockaddr(b); err == nil {
				ev.Addr = &sa
				if sa.Family == "AF_UNIX" && sa.Address != "" && sa.Address[0] != '@' {
					ev.Paths = []string{t.abs(tid, atFDCWD, sa.Address)}
				}
			}
		}
	case nrMmap:
		if a[2]&protExec != 0 && a[3]&mapAnon == 0 && int32(a[4]) >= 0 {
			if p := fdPath(tid, int(int32(a[4]))); strings.HasPrefix(p, "/") {
				ev.Mapped = p
			}
		}
	}
	if (ev.Nr == nrOpen || ev.Nr == nrOpenat || ev.Nr == nrOpenat2) && ev.OpenFlags&oCreat != 0 && len(ev.Paths) > 0 {
		_, err := os.Lstat(ev.Paths[0])
		ev.Existed = err == nil
	}
}

// exit reads what a syscall left behind, at its exit stop.
func (t *tracer) exit(tk *task) {
	ev := &tk.ev
	if !ev.ok() {
		return
	}
	switch ev.Nr {
	case nrStatfs, nrFstatfs:
		var b [8]byte
		if t.readMem(tk.tid, ev.Args[1], b[:]) == nil {
			ev.FSType = FSTypeName(binary.LittleEndian.Uint64(b[:]))
		}
	case nrBind, nrListen:
		ev.Local, ev.SockType = sockName(tk.tgid, int(int32(ev.Args[0])))
	}
}

// sockName reads the address and type of a tracee's socket by copying its
// file descriptor with pidfd_getfd.
func sockName(tgid, fd int) (*Sockaddr, string) {
	pidfd, err := unix.PidfdOpen(tgid, 0)
	if err != nil {
		return nil, ""
	}
	defer unix.Close(pidfd)
	sfd, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return nil, ""
	}
	defer unix.Close(sfd)
	typ := ""
	if v, err := unix.GetsockoptInt(sfd, unix.SOL_SOCKET, unix.SO_TYPE); err == nil {
		typ = SockTypeName(uint64(v))
	}
	sa, err := unix.Getsockname(sfd)
	if err != nil {
		return nil, typ
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &Sockaddr{Family: "AF_INET", Address: ipString(sa.Addr[:]), Port: sa.Port}, typ
	case *unix.SockaddrInet6:
		return &Sockaddr{Family: "AF_INET6", Address: ipString(sa.Addr[:]), Port: sa.Port}, typ
	case *unix.SockaddrUnix:
		return &Sockaddr{Family: "AF_UNIX", Address: sa.Name}, typ
	}
	return nil, typ
}

func ipString(b []byte) string {
	var raw [28]byte
	if len(b) == 4 {
		binary.LittleEndian.PutUint16(raw[:], 2)
		copy(raw[4:], b)
	} else {
		binary.LittleEndian.PutUint16(raw[:], 10)
		copy(raw[8:], b)
	}
	sa, _ := DecodeSockaddr(raw[:])
	return sa.Address
}

func (t *tracer) readMem(pid int, addr uint64, b []byte) error {
	if addr == 0 {
		return unix.EFAULT
	}
	local := []unix.Iovec{{Base: &b[0], Len: uint64(len(b))}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(b)}}
	n, err := unix.ProcessVMReadv(pid, local, remote, 0)
	if err == nil && n == len(b) {
		return nil
	}
	if err == nil {
		err = unix.EFAULT
	}
	if err == unix.ENOSYS || err == unix.EPERM {
		_, err = unix.PtracePeekData(pid, uintptr(addr), b)
	}
	return err
}

// readString reads a NUL-terminated string, a page at most at a time so
// that no read crosses into an unmapped page.
func (t *tracer) readString(pid int, addr uint64) (string, bool) {
	if addr == 0 {
		return "", false
	}
	var out []byte
	for len(out) < maxString {
		n := pageSize - int(addr%pageSize)
		chunk := t.buf[:n]
		if err := t.readMem(pid, addr, chunk); err != nil {
			if out == nil {
				return "", false
			}
			break
		}
		if i := bytes.IndexByte(chunk, 0); i >= 0 {
			if out == nil {
				return string(chunk[:i]), true
			}
			return string(append(out, chunk[:i]...)), true
		}
		out = append(out, chunk...)
		addr += uint64(n)
	}
	return string(out), true
}

func (t *tracer) readArgv(pid int, addr uint64) []string {
	argv := []string{}
	var b [8]byte
	for i := 0; i < maxArgs && addr != 0; i++ {
		if t.readMem(pid, addr+uint64(8*i), b[:]) != nil {
			break
		}
		p := binary.LittleEndian.Uint64(b[:])
		if p == 0 {
			break
		}
		s, _ := t.readString(pid, p)
		argv = append(argv, s)
	}
	return argv
}

// abs makes p absolute as the kernel would resolve it for tid.
func (t *tracer) abs(tid int, dirfd int64, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	var base string
	if dirfd == atFDCWD {
		base, _ = os.Readlink("/proc/" + strconv.Itoa(tid) + "/cwd")
	} else {
		base = fdPath(tid, int(dirfd))
	}
	if !filepath.IsAbs(base) {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

func fdPath(tid, fd int) string {
	p, err := os.Readlink("/proc/" + strconv.Itoa(tid) + "/fd/" + strconv.Itoa(fd))
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(p, " (deleted)")
}

func readTgid(tid int) int {
	f, err := os.Open("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return tid
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Tgid:"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				return n
			}
		}
	}
	return tid
}
