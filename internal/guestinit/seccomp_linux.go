package guestinit

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/bespoke-os/bespoke/internal/guestinit/lite"
	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"golang.org/x/sys/unix"
)

// The program's seccomp filter (protocol.ParamSeccomp). Go's os/exec has
// no hook between fork and exec, so the init starts its own binary again
// as seccompExecName, with the allowlist and the program's path and argv.
// That helper installs the filter on its one thread with a listener
// (SECCOMP_FILTER_FLAG_NEW_LISTENER), says the listener's fd number on a
// pipe, waits until the init has taken the fd (pidfd_getfd), and execs
// the program; the filter stays on it and on everything it starts. A
// syscall outside the allowlist reaches the init as a user notification:
// the init reports it (protocol.EventSeccomp) and answers ENOSYS
// (protocol.SeccompEnforce) or lets it run (protocol.SeccompLog). Allowed
// syscalls never leave the kernel, which caches the filter's constant
// verdicts per syscall number.
const seccompExecName = "bespoke-seccomp"

// The helper's pipes: the go-ahead from the init, and the listener's fd
// number (or an error) to the init.
const (
	seccompGoFd     = 3
	seccompReportFd = 4
)

func init() {
	if len(os.Args) > 3 && os.Args[0] == seccompExecName && os.Getpid() != 1 {
		// The filter goes on this thread only; keep the exec on it too.
		runtime.LockOSThread()
		seccompExec(os.Args[1], os.Args[2], os.Args[3:])
	}
}

// seccompExec is the helper: it never returns.
func seccompExec(param, path string, argv []string) {
	fail := func(format string, args ...any) {
		msg := lite.Sprintf(format, args...)
		unix.Write(seccompReportFd, []byte("error "+msg+"\n"))
		os.Stderr.WriteString(lite.Sprintf("bespoke-init: seccomp: %s\n", msg))
		os.Exit(126)
	}
	unix.CloseOnExec(seccompGoFd)
	unix.CloseOnExec(seccompReportFd)
	_, allow, err := protocol.DecodeSeccomp(param)
	if err != nil {
		fail("%v", err)
	}
	filter := SeccompFilter(allow)
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	// The program runs as its own user: a filter then needs no_new_privs
	// (a setuid binary it execs gains nothing).
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fail("prctl(PR_SET_NO_NEW_PRIVS): %v", err)
	}
	fd, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		fail("installing the filter: %v (the kernel needs CONFIG_SECCOMP_FILTER)", e)
	}
	// From here on, only syscalls of the allowlist run unreported; the
	// ones below are in every allowlist (SeccompBase).
	if _, err := unix.Write(seccompReportFd, []byte("fd "+strconv.Itoa(int(fd))+"\n")); err != nil {
		os.Exit(126)
	}
	var b [1]byte
	if n, _ := unix.Read(seccompGoFd, b[:]); n != 1 {
		os.Exit(126) // the init gave up on us
	}
	unix.Close(int(fd))
	err = unix.Exec(path, argv, os.Environ())
	os.Stderr.WriteString(lite.Sprintf("bespoke-init: exec %s: %v\n", path, err))
	os.Exit(127)
}

// SeccompFilter returns the classic BPF program of an allowlist: the
// x86-64 syscalls in allow return SECCOMP_RET_ALLOW; every other syscall,
// x32's and other ABIs' included, goes to the listener
// (SECCOMP_RET_USER_NOTIF). It compares with one number at a time, each
// compare followed by its own return, so that no jump is longer than one
// instruction and the kernel's cache of constant verdicts applies.
func SeccompFilter(allow []int) []unix.SockFilter {
	const (
		ldw  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jset = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret  = unix.BPF_RET | unix.BPF_K
		// offsets in struct seccomp_data
		offNr   = 0
		offArch = 4
		x32Bit  = 0x40000000
	)
	notify := unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_USER_NOTIF}
	f := []unix.SockFilter{
		{Code: ldw, K: offArch},
		{Code: jeq, Jt: 1, Jf: 0, K: unix.AUDIT_ARCH_X86_64},
		notify,
		{Code: ldw, K: offNr},
		{Code: jset, Jt: 0, Jf: 1, K: x32Bit},
		notify,
	}
	for _, nr := range allow {
		f = append(f,
			unix.SockFilter{Code: jeq, Jt: 0, Jf: 1, K: uint32(nr)},
			unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ALLOW})
	}
	return append(f, notify)
}

// seccompNotif and seccompResp are struct seccomp_notif and struct
// seccomp_notif_resp (linux/seccomp.h).
type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Nr    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

type seccompResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// startFiltered starts the program under the seccomp helper (see
// seccompExecName) and serves the filter's notifications until the init
// ends. It returns the program's pid: the helper's, which the exec keeps.
//
// The events of the filter wait for said to be closed: the caller closes
// it once it said the program's exec event, which comes first.
func startFiltered(p Plan, attr *syscall.ProcAttr, said <-chan struct{}) (int, error) {
	param, err := protocol.EncodeSeccomp(p.Seccomp, p.SeccompAllow)
	if err != nil {
		return 0, err
	}
	goR, goW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer goW.Close()
	repR, repW, err := os.Pipe()
	if err != nil {
		goR.Close()
		return 0, err
	}
	defer repR.Close()
	a := *attr
	a.Files = append(append([]uintptr{}, attr.Files...), goR.Fd(), repW.Fd())
	argv := append([]string{seccompExecName, param, p.Path}, p.Argv...)
	pid, err := syscall.ForkExec("/proc/self/exe", argv, &a)
	goR.Close()
	repW.Close()
	if err != nil {
		return 0, err
	}
	listener, err := takeListener(pid, repR)
	if err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return pid, lite.Errorf("seccomp filter for %s: %w", p.Path, err)
	}
	go func() {
		<-said
		serveSeccomp(listener, p.Seccomp)
	}()
	if _, err := goW.Write([]byte{1}); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return pid, lite.Errorf("seccomp filter for %s: %w", p.Path, err)
	}
	return pid, nil
}

// takeListener reads the helper's report and takes its listener fd.
func takeListener(pid int, rep *os.File) (int, error) {
	rep.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(rep).ReadString('\n')
	if err != nil {
		return -1, lite.Errorf("the helper said nothing: %v", err)
	}
	line = strings.TrimSpace(line)
	if msg, ok := strings.CutPrefix(line, "error "); ok {
		return -1, lite.Errorf("%s", msg)
	}
	v, ok := strings.CutPrefix(line, "fd ")
	n, err := strconv.Atoi(v)
	if !ok || err != nil {
		return -1, lite.Errorf("the helper said %q", line)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, lite.Errorf("pidfd_open: %w", err)
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, n, 0)
	if err != nil {
		return -1, lite.Errorf("pidfd_getfd: %w", err)
	}
	unix.CloseOnExec(fd)
	return fd, nil
}

// serveSeccomp answers the filter's notifications: each syscall number
// is reported once, and the syscall fails with ENOSYS (enforce) or runs
// (log).
func serveSeccomp(fd int, mode string) {
	seen := map[int]bool{}
	for {
		var n seccompNotif
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&n)))
		switch e {
		case 0:
		case unix.EINTR, unix.ENOENT: // interrupted, or the caller died meanwhile
			continue
		default:
			warnf("seccomp: reading the filter's notifications: %v; syscalls outside the allowlist now fail", e)
			return
		}
		r := seccompResp{ID: n.ID}
		ev := protocol.Event{Kind: protocol.EventSeccomp, Pid: int(n.Pid), Nr: int(n.Nr), Msg: protocol.SeccompDenied}
		if n.Arch != unix.AUDIT_ARCH_X86_64 || n.Nr&0x40000000 != 0 {
			ev.Nr = -1
		}
		if mode == protocol.SeccompLog {
			r.Flags = unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE
			ev.Msg = protocol.SeccompAllowed
		} else {
			r.Error = -int32(unix.ENOSYS)
		}
		if !seen[ev.Nr] {
			seen[ev.Nr] = true
			ev.Uptime = uptime()
			say(ev)
		}
		unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&r)))
	}
}
