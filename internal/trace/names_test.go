package trace

import "testing"

func TestSyscallTable(t *testing.T) {
	// Numbers from Linux 6.12 arch/x86/entry/syscalls/syscall_64.tbl.
	known := map[int]string{
		0: "read", 1: "write", 2: "open", 9: "mmap", 56: "clone", 57: "fork", 58: "vfork", 59: "execve",
		158: "arch_prctl", 202: "futex", 232: "epoll_wait", 257: "openat", 262: "newfstatat",
		281: "epoll_pwait", 322: "execveat", 332: "statx", 334: "rseq", 335: "uretprobe",
		424: "pidfd_send_signal", 425: "io_uring_setup", 426: "io_uring_enter", 427: "io_uring_register",
		434: "pidfd_open", 435: "clone3", 437: "openat2", 438: "pidfd_getfd", 439: "faccessat2",
		449: "futex_waitv", 451: "cachestat", 452: "fchmodat2", 453: "map_shadow_stack",
		454: "futex_wake", 455: "futex_wait", 456: "futex_requeue", 457: "statmount", 458: "listmount",
		459: "lsm_get_self_attr", 460: "lsm_set_self_attr", 461: "lsm_list_modules", 462: "mseal",
	}
	for nr, want := range known {
		if got := SyscallName(nr); got != want {
			t.Errorf("SyscallName(%d) = %q, want %q", nr, got, want)
		}
		if got := SyscallNumber(want); got != nr {
			t.Errorf("SyscallNumber(%q) = %d, want %d", want, got, nr)
		}
	}
	if maxSyscall != 462 {
		t.Errorf("maxSyscall = %d, want 462 (mseal, the last in 6.12)", maxSyscall)
	}
	// The only hole in the x86_64 table is 336..423 (kept in step with
	// the numbers other architectures use).
	for nr := 0; nr <= maxSyscall; nr++ {
		hole := nr >= 336 && nr <= 423
		if got := syscallNames[nr] == ""; got != hole {
			t.Errorf("syscall %d: empty = %v, want %v", nr, got, hole)
		}
	}
	if got := SyscallName(463); got != "syscall_463" {
		t.Errorf("SyscallName(463) = %q, want syscall_463", got)
	}
	if got := SyscallName(compat32 + 11); got != "i386_11" {
		t.Errorf("SyscallName(compat32+11) = %q, want i386_11", got)
	}
}

func TestNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{DomainName(2), "AF_INET"},
		{DomainName(10), "AF_INET6"},
		{DomainName(16), "AF_NETLINK"},
		{DomainName(99), "AF_99"},
		{SockTypeName(1 | 0x80000 | 0x800), "SOCK_STREAM"},
		{SockTypeName(2), "SOCK_DGRAM"},
		{IoctlName(0x5401), "TCGETS"},
		{IoctlName(0x5413), "TIOCGWINSZ"},
		{IoctlName(0x5421), "FIONBIO"},
		{IoctlName(0x541B), "FIONREAD"},
		{PrctlOptionName("prctl", 15), "PR_SET_NAME"},
		{PrctlOptionName("arch_prctl", 0x1002), "ARCH_SET_FS"},
		{PrctlOptionName("prctl", 9999), "9999"},
		{FSTypeName(0xEF53), "ext4"},
		{FSTypeName(0x01021994), "tmpfs"},
		{FSTypeName(0x9fa0), "proc"},
		{FSTypeName(0x1234), "0x1234"},
		{errnoName(2), "ENOENT"},
		{errnoName(13), "EACCES"},
		{errnoName(512), "ERESTARTSYS"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}
