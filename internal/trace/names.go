package trace

import (
	"fmt"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// compat32 is added to the number of a 32-bit (int 0x80) syscall so that
// it stays apart from the x86_64 numbers.
const compat32 = 1 << 20

// SyscallName returns the x86_64 name of syscall nr (Linux 6.12), or
// "syscall_N" for a number the table does not know (a newer kernel's).
func SyscallName(nr int) string {
	if nr >= 0 && nr <= maxSyscall && syscallNames[nr] != "" {
		return syscallNames[nr]
	}
	if nr >= compat32 {
		return "i386_" + strconv.Itoa(nr-compat32)
	}
	return "syscall_" + strconv.Itoa(nr)
}

// SyscallNumber returns the x86_64 number of the named syscall, or -1.
func SyscallNumber(name string) int {
	for nr, n := range syscallNames {
		if n == name {
			return nr
		}
	}
	return -1
}

// errnoName returns "ENOENT" for 2; the kernel-internal restart codes get
// their kernel names.
func errnoName(e int) string {
	switch e {
	case 512:
		return "ERESTARTSYS"
	case 513:
		return "ERESTARTNOINTR"
	case 514:
		return "ERESTARTNOHAND"
	case 516:
		return "ERESTART_RESTARTBLOCK"
	}
	if n := unix.ErrnoName(syscall.Errno(e)); n != "" {
		return n
	}
	return "E" + strconv.Itoa(e)
}

// signalName returns "SIGSEGV" for 11.
func signalName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return "SIG" + strconv.Itoa(int(s))
}

var domainNames = map[uint64]string{
	0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 3: "AF_AX25", 4: "AF_IPX", 5: "AF_APPLETALK",
	6: "AF_NETROM", 7: "AF_BRIDGE", 8: "AF_ATMPVC", 9: "AF_X25", 10: "AF_INET6", 11: "AF_ROSE",
	12: "AF_DECnet", 13: "AF_NETBEUI", 14: "AF_SECURITY", 15: "AF_KEY", 16: "AF_NETLINK",
	17: "AF_PACKET", 18: "AF_ASH", 19: "AF_ECONET", 20: "AF_ATMSVC", 21: "AF_RDS", 22: "AF_SNA",
	23: "AF_IRDA", 24: "AF_PPPOX", 25: "AF_WANPIPE", 26: "AF_LLC", 27: "AF_IB", 28: "AF_MPLS",
	29: "AF_CAN", 30: "AF_TIPC", 31: "AF_BLUETOOTH", 32: "AF_IUCV", 33: "AF_RXRPC", 34: "AF_ISDN",
	35: "AF_PHONET", 36: "AF_IEEE802154", 37: "AF_CAIF", 38: "AF_ALG", 39: "AF_NFC", 40: "AF_VSOCK",
	41: "AF_KCM", 42: "AF_QIPCRTR", 43: "AF_SMC", 44: "AF_XDP", 45: "AF_MCTP",
}

// DomainName returns "AF_INET" for 2, or "AF_N" when unknown.
func DomainName(d uint64) string {
	if n, ok := domainNames[d]; ok {
		return n
	}
	return fmt.Sprintf("AF_%d", d)
}

var sockTypeNames = map[uint64]string{
	1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET",
	6: "SOCK_DCCP", 10: "SOCK_PACKET",
}

// SockTypeName returns "SOCK_STREAM" for 1; SOCK_NONBLOCK and SOCK_CLOEXEC
// are stripped first.
func SockTypeName(t uint64) string {
	t &= 0xf
	if n, ok := sockTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("SOCK_%d", t)
}

// ioctlNames are common ioctl requests (x86_64 numbering).
var ioctlNames = map[uint64]string{
	0x5401: "TCGETS", 0x5402: "TCSETS", 0x5403: "TCSETSW", 0x5404: "TCSETSF",
	0x5405: "TCGETA", 0x5406: "TCSETA", 0x5409: "TCSBRK", 0x540A: "TCXONC", 0x540B: "TCFLSH",
	0x540C: "TIOCEXCL", 0x540E: "TIOCSCTTY", 0x540F: "TIOCGPGRP", 0x5410: "TIOCSPGRP",
	0x5411: "TIOCOUTQ", 0x5413: "TIOCGWINSZ", 0x5414: "TIOCSWINSZ", 0x5415: "TIOCMGET",
	0x541B: "FIONREAD", 0x541C: "TIOCLINUX", 0x5421: "FIONBIO", 0x5422: "TIOCNOTTY",
	0x5429: "TIOCGSID", 0x5450: "FIONCLEX", 0x5451: "FIOCLEX", 0x5452: "FIOASYNC",
	0x80045430: "TIOCGPTN", 0x40045431: "TIOCSPTLCK", 0x80045432: "TIOCGDEV", 0x5441: "TIOCGPTPEER",
	0x8910: "SIOCGIFNAME", 0x8912: "SIOCGIFCONF", 0x8913: "SIOCGIFFLAGS", 0x8914: "SIOCSIFFLAGS",
	0x8915: "SIOCGIFADDR", 0x8916: "SIOCSIFADDR", 0x891b: "SIOCGIFNETMASK", 0x8921: "SIOCGIFMTU",
	0x8927: "SIOCGIFHWADDR", 0x8933: "SIOCGIFINDEX", 0x8946: "SIOCETHTOOL",
	0x80086601: "FS_IOC_GETFLAGS", 0x40086602: "FS_IOC_SETFLAGS", 0x40049409: "FICLONE",
	0xc020660b: "FS_IOC_FIEMAP", 0x80081272: "BLKGETSIZE64", 0x1260: "BLKGETSIZE", 0xAE00: "KVM_GET_API_VERSION", 0xAE01: "KVM_CREATE_VM", 0xb701: "NS_GET_USERNS", 0xb702: "NS_GET_PARENT", 0xc0306201: "BINDER_WRITE_READ",
	0x80087601: "FS_IOC_GETVERSION",
}

// IoctlName returns the name of a common ioctl request, or "".
func IoctlName(req uint64) string { return ioctlNames[req] }

var prctlNames = map[uint64]string{
	1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE", 4: "PR_SET_DUMPABLE",
	5: "PR_GET_UNALIGN", 6: "PR_SET_UNALIGN", 7: "PR_GET_KEEPCAPS", 8: "PR_SET_KEEPCAPS",
	9: "PR_GET_FPEMU", 10: "PR_SET_FPEMU", 11: "PR_GET_FPEXC", 12: "PR_SET_FPEXC",
	13: "PR_GET_TIMING", 14: "PR_SET_TIMING", 15: "PR_SET_NAME", 16: "PR_GET_NAME",
	19: "PR_GET_ENDIAN", 20: "PR_SET_ENDIAN", 21: "PR_GET_SECCOMP", 22: "PR_SET_SECCOMP",
	23: "PR_CAPBSET_READ", 24: "PR_CAPBSET_DROP", 25: "PR_GET_TSC", 26: "PR_SET_TSC",
	27: "PR_GET_SECUREBITS", 28: "PR_SET_SECUREBITS", 29: "PR_SET_TIMERSLACK", 30: "PR_GET_TIMERSLACK",
	31: "PR_TASK_PERF_EVENTS_DISABLE", 32: "PR_TASK_PERF_EVENTS_ENABLE", 33: "PR_MCE_KILL",
	34: "PR_MCE_KILL_GET", 35: "PR_SET_MM", 36: "PR_SET_CHILD_SUBREAPER", 37: "PR_GET_CHILD_SUBREAPER",
	38: "PR_SET_NO_NEW_PRIVS", 39: "PR_GET_NO_NEW_PRIVS", 40: "PR_GET_TID_ADDRESS",
	41: "PR_SET_THP_DISABLE", 42: "PR_GET_THP_DISABLE", 45: "PR_SET_FP_MODE", 46: "PR_GET_FP_MODE",
	47: "PR_CAP_AMBIENT", 52: "PR_GET_SPECULATION_CTRL", 53: "PR_SET_SPECULATION_CTRL",
	57: "PR_SET_IO_FLUSHER", 58: "PR_GET_IO_FLUSHER", 59: "PR_SET_SYSCALL_USER_DISPATCH",
	62: "PR_SCHED_CORE", 65: "PR_SET_MDWE", 66: "PR_GET_MDWE", 67: "PR_SET_MEMORY_MERGE",
	68: "PR_GET_MEMORY_MERGE", 0x59616d61: "PR_SET_PTRACER", 0x53564d41: "PR_SET_VMA",
}

var archPrctlNames = map[uint64]string{
	0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS", 0x1004: "ARCH_GET_GS",
	0x1011: "ARCH_GET_CPUID", 0x1012: "ARCH_SET_CPUID",
	0x1021: "ARCH_GET_XCOMP_SUPP", 0x1022: "ARCH_GET_XCOMP_PERM", 0x1023: "ARCH_REQ_XCOMP_PERM",
	0x1024: "ARCH_GET_XCOMP_GUEST_PERM", 0x1025: "ARCH_REQ_XCOMP_GUEST_PERM",
	0x2001: "ARCH_MAP_VDSO_X32", 0x2002: "ARCH_MAP_VDSO_32", 0x2003: "ARCH_MAP_VDSO_64",
	0x3001: "ARCH_CET_STATUS",
	0x4001: "ARCH_GET_UNTAG_MASK", 0x4002: "ARCH_ENABLE_TAGGED_ADDR", 0x4003: "ARCH_GET_MAX_TAG_BITS",
	0x4004: "ARCH_FORCE_TAGGED_SVA",
	0x5001: "ARCH_SHSTK_ENABLE", 0x5002: "ARCH_SHSTK_DISABLE", 0x5003: "ARCH_SHSTK_LOCK",
	0x5004: "ARCH_SHSTK_UNLOCK", 0x5005: "ARCH_SHSTK_STATUS",
}

// PrctlOptionName names a prctl (syscall "prctl") or arch_prctl option, or
// returns the number in decimal.
func PrctlOptionName(syscallName string, opt uint64) string {
	table := prctlNames
	if syscallName == "arch_prctl" {
		table = archPrctlNames
	}
	opt &= 0xffffffff
	if n, ok := table[opt]; ok {
		return n
	}
	return strconv.FormatUint(opt, 10)
}

// fsMagic maps statfs f_type values to filesystem type names as
// /proc/filesystems spells them.
var fsMagic = map[uint64]string{
	0xEF53: "ext4", 0x01021994: "tmpfs", 0x9fa0: "proc", 0x62656572: "sysfs",
	0x794c7630: "overlay", 0x58465342: "xfs", 0x9123683e: "btrfs", 0x63677270: "cgroup2",
	0x27e0eb: "cgroup", 0x1cd1: "devpts", 0x64626720: "debugfs", 0x73636673: "securityfs",
	0x6969: "nfs", 0x858458f6: "ramfs", 0x73717368: "squashfs", 0x958458f6: "hugetlbfs",
	0xcafe4a11: "bpf", 0x74726163: "tracefs", 0x65735546: "fuse", 0x01021997: "9p",
	0x4d44: "vfat", 0x9660: "iso9660", 0x19800202: "mqueue", 0x0187: "autofs",
	0x62656570: "configfs", 0x6165676C: "pstore", 0xde5e81e4: "efivarfs",
	0x42494e4d: "binfmt_misc", 0xF2F52010: "f2fs", 0x2fc12fc1: "zfs", 0x6e736673: "nsfs",
	0x534F434B: "sockfs", 0x50495045: "pipefs", 0x09041934: "anon_inodefs",
	0x3153464a: "jfs", 0x52654973: "reiserfs", 0xff534d42: "cifs", 0xFE534D42: "smb2",
	0x5346414f: "afs", 0x137d: "ext", 0x5a3c69f0: "aafs", 0x2011BAB0: "exfat",
	0x5346544e: "ntfs", 0x7366746e: "ntfs3", 0xabba1974: "xenfs", 0x13661366: "balloon_kvm",
	0x28cd3d45: "cramfs", 0x24051905: "ubifs", 0x6e667364: "nfsd", 0x15013346: "udf",
}

// FSTypeName returns the filesystem type for a statfs f_type value, or
// "0xHEX" when unknown.
func FSTypeName(magic uint64) string {
	magic &= 0xffffffff
	if n, ok := fsMagic[magic]; ok {
		return n
	}
	return fmt.Sprintf("0x%x", magic)
}
