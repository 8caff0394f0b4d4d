package trace

// argKind says how the tracer reads one syscall argument at entry.
type argKind uint8

const (
	argNone   argKind = iota
	argPath           // a path, relative to the cwd
	argDirfd          // a dirfd for the next argPath argument
	argString         // a plain string (mount's fstype)
)

// spec says what the tracer reads for one syscall and whether it needs the
// result. Syscalls without a spec are only counted (one stop, at entry).
type spec struct {
	op       string     // path operation recorded in manifest.Path.Ops
	args     [6]argKind // how to read each argument
	needExit bool       // the result matters: stop at exit too
}

// pathSpecs are the syscalls that name paths. Every one needs its result.
var pathSpecs = map[string]spec{
	"open":              {op: "open", args: [6]argKind{argPath}},
	"creat":             {op: "open", args: [6]argKind{argPath}},
	"openat":            {op: "open", args: [6]argKind{argDirfd, argPath}},
	"openat2":           {op: "open", args: [6]argKind{argDirfd, argPath}},
	"stat":              {op: "stat", args: [6]argKind{argPath}},
	"lstat":             {op: "stat", args: [6]argKind{argPath}},
	"newfstatat":        {op: "stat", args: [6]argKind{argDirfd, argPath}},
	"statx":             {op: "stat", args: [6]argKind{argDirfd, argPath}},
	"access":            {op: "access", args: [6]argKind{argPath}},
	"faccessat":         {op: "access", args: [6]argKind{argDirfd, argPath}},
	"faccessat2":        {op: "access", args: [6]argKind{argDirfd, argPath}},
	"readlink":          {op: "readlink", args: [6]argKind{argPath}},
	"readlinkat":        {op: "readlink", args: [6]argKind{argDirfd, argPath}},
	"execve":            {op: "exec", args: [6]argKind{argPath}},
	"execveat":          {op: "exec", args: [6]argKind{argDirfd, argPath}},
	"mkdir":             {op: "mkdir", args: [6]argKind{argPath}},
	"mkdirat":           {op: "mkdir", args: [6]argKind{argDirfd, argPath}},
	"rmdir":             {op: "rmdir", args: [6]argKind{argPath}},
	"unlink":            {op: "unlink", args: [6]argKind{argPath}},
	"unlinkat":          {op: "unlink", args: [6]argKind{argDirfd, argPath}},
	"rename":            {op: "rename", args: [6]argKind{argPath, argPath}},
	"renameat":          {op: "rename", args: [6]argKind{argDirfd, argPath, argDirfd, argPath}},
	"renameat2":         {op: "rename", args: [6]argKind{argDirfd, argPath, argDirfd, argPath}},
	"link":              {op: "link", args: [6]argKind{argPath, argPath}},
	"linkat":            {op: "link", args: [6]argKind{argDirfd, argPath, argDirfd, argPath}},
	"symlink":           {op: "symlink", args: [6]argKind{argNone, argPath}},
	"symlinkat":         {op: "symlink", args: [6]argKind{argNone, argDirfd, argPath}},
	"chdir":             {op: "chdir", args: [6]argKind{argPath}},
	"chroot":            {op: "chroot", args: [6]argKind{argPath}},
	"statfs":            {op: "statfs", args: [6]argKind{argPath}},
	"truncate":          {op: "truncate", args: [6]argKind{argPath}},
	"chmod":             {op: "chmod", args: [6]argKind{argPath}},
	"fchmodat":          {op: "chmod", args: [6]argKind{argDirfd, argPath}},
	"fchmodat2":         {op: "chmod", args: [6]argKind{argDirfd, argPath}},
	"chown":             {op: "chown", args: [6]argKind{argPath}},
	"lchown":            {op: "chown", args: [6]argKind{argPath}},
	"fchownat":          {op: "chown", args: [6]argKind{argDirfd, argPath}},
	"utime":             {op: "utime", args: [6]argKind{argPath}},
	"utimes":            {op: "utime", args: [6]argKind{argPath}},
	"futimesat":         {op: "utime", args: [6]argKind{argDirfd, argPath}},
	"utimensat":         {op: "utime", args: [6]argKind{argDirfd, argPath}},
	"mknod":             {op: "mknod", args: [6]argKind{argPath}},
	"mknodat":           {op: "mknod", args: [6]argKind{argDirfd, argPath}},
	"getxattr":          {op: "xattr", args: [6]argKind{argPath}},
	"lgetxattr":         {op: "xattr", args: [6]argKind{argPath}},
	"setxattr":          {op: "xattr", args: [6]argKind{argPath}},
	"lsetxattr":         {op: "xattr", args: [6]argKind{argPath}},
	"listxattr":         {op: "xattr", args: [6]argKind{argPath}},
	"llistxattr":        {op: "xattr", args: [6]argKind{argPath}},
	"removexattr":       {op: "xattr", args: [6]argKind{argPath}},
	"lremovexattr":      {op: "xattr", args: [6]argKind{argPath}},
	"inotify_add_watch": {op: "watch", args: [6]argKind{argNone, argPath}},
	"uselib":            {op: "open", args: [6]argKind{argPath}},
	"swapon":            {op: "swapon", args: [6]argKind{argPath}},
	"acct":              {op: "open", args: [6]argKind{argPath}},
	"name_to_handle_at": {op: "stat", args: [6]argKind{argDirfd, argPath}},
	"open_tree":         {op: "mount", args: [6]argKind{argDirfd, argPath}},
	"mount":             {op: "mount", args: [6]argKind{argNone, argPath, argString}},
	"umount2":           {op: "umount", args: [6]argKind{argPath}},
	"pivot_root":        {op: "mount", args: [6]argKind{argPath, argPath}},
}

// otherSpecs are syscalls read for something other than a path.
var otherSpecs = map[string]spec{
	"socket":     {needExit: true},
	"socketpair": {needExit: true},
	"bind":       {op: "bind", needExit: true},    // sockaddr at entry, real address at exit
	"connect":    {op: "connect", needExit: true}, // AF_UNIX path and result
	"listen":     {needExit: true},
	"fstatfs":    {needExit: true}, // f_type at exit
	"mmap":       {},               // PROT_EXEC mapping of a file: the file, at entry
	"ioctl":      {},
	"prctl":      {},
	"arch_prctl": {},
	// Credential changes: the user and group ids, at entry.
	"setuid":    {},
	"setreuid":  {},
	"setresuid": {},
	"setfsuid":  {},
	"setgid":    {},
	"setregid":  {},
	"setresgid": {},
	"setfsgid":  {},
}

// noReturn are the syscalls whose "result" at exit is not one: they do
// not return (exit, exit_group) or return what they restore
// (rt_sigreturn, restart_syscall). Options.AllResults does not record them.
var noReturn = map[int]bool{}

// specs is indexed by syscall number; nil means count only.
var specs [maxSyscall + 1]*spec

func init() {
	for name, s := range pathSpecs {
		s := s
		s.needExit = true
		specs[mustNumber(name)] = &s
	}
	for name, s := range otherSpecs {
		s := s
		specs[mustNumber(name)] = &s
	}
	for _, name := range []string{"exit", "exit_group", "rt_sigreturn", "restart_syscall"} {
		noReturn[mustNumber(name)] = true
	}
}

func mustNumber(name string) int {
	nr := SyscallNumber(name)
	if nr < 0 {
		panic("trace: unknown syscall " + name)
	}
	return nr
}

// specFor returns the spec of nr, or nil.
func specFor(nr int) *spec {
	if nr < 0 || nr > maxSyscall {
		return nil
	}
	return specs[nr]
}
