package guestinit

import "slices"

// Syscalls are the syscalls an image keeps in its syscall table whatever
// the program's trace says, when bespoke removes the others
// (kernel.shake_syscalls): those of the guest init and of the guest tracer
// (Go programs: the runtime's, os, os/exec, os/signal and x/sys/unix as
// they use them), and those a traced program makes without the tracer
// seeing them on the host.
var Syscalls = append(slices.Clone(Unseen),
	// The Go runtime (runtime/sys_linux_amd64.s, internal/runtime/syscall).
	"read", "write", "close", "mmap", "munmap", "mprotect", "brk", "rt_sigaction",
	"rt_sigprocmask", "sched_yield", "mincore", "madvise", "nanosleep",
	"setitimer", "getpid", "socket", "connect", "clone", "clone3", "kill",
	"sigaltstack", "arch_prctl", "gettid", "futex", "sched_getaffinity",
	"timer_create", "timer_settime", "timer_delete", "tgkill", "openat",
	"faccessat", "faccessat2", "pipe2", "epoll_create1", "epoll_ctl",
	"epoll_pwait", "epoll_pwait2", "eventfd2", "prlimit64", "getrlimit",
	"setrlimit", "uname", "getrandom", "rseq",

	// os, os/exec, os/signal, syscall and x/sys/unix as the init and the
	// tracer use them: files, processes, users, mounts, the console and
	// the network.
	"fstat", "newfstatat", "statx", "lseek", "pread64", "pwrite64", "readv",
	"writev", "getdents64", "readlinkat", "mkdirat", "mknodat", "unlinkat",
	"symlinkat", "linkat", "renameat", "renameat2", "fchmod", "fchmodat",
	"fchown", "fchownat", "utimensat", "umask", "chdir", "fchdir", "getcwd",
	"dup", "dup2", "dup3", "fcntl", "ioctl", "ftruncate", "fsync", "sync",
	"copy_file_range", "sendfile", "splice", "statfs", "fstatfs",
	"execve", "execveat", "wait4", "waitid", "pidfd_open", "pidfd_send_signal",
	"pidfd_getfd", "setsid", "setpgid", "getpgid", "getppid", "prctl",
	"getuid", "geteuid", "getgid", "getegid", "setuid", "setgid", "setgroups",
	"setresuid", "setresgid", "capget", "capset",
	"mount", "umount2", "chroot", "sethostname", "reboot",
	// The clock from the host's, and the program's seccomp filter.
	"clock_settime", "seccomp",
	"ptrace", "process_vm_readv", "rt_sigtimedwait", "rt_sigqueueinfo",
	"poll", "ppoll", "select", "pselect6",
	"bind", "listen", "accept4", "sendto", "recvfrom", "sendmsg", "recvmsg",
	"setsockopt", "getsockopt", "getsockname", "getpeername", "shutdown",
	"socketpair",
)

// Unseen are syscalls a program makes that no tracer on the host sees:
// the vDSO's fallbacks (the guest's clocksource may not be one the vDSO
// reads), the kernel's restart of an interrupted sleep, the return from a
// signal handler, and the exits.
var Unseen = []string{
	"clock_gettime", "clock_getres", "gettimeofday", "time", "getcpu",
	"restart_syscall", "rt_sigreturn", "exit", "exit_group",
}

// SeccompBase are the syscalls every seccomp allowlist holds beyond the
// trace's: those a program makes that no tracer on the host sees
// (Unseen), and those the init's seccomp helper makes between the filter
// and the program's exec (seccomp_linux.go).
var SeccompBase = append(slices.Clone(Unseen), "read", "write", "close", "execve")
