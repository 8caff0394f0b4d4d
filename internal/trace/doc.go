// Package trace runs an unmodified program on the host under a ptrace
// tracer and records what it used into a manifest.Manifest: syscalls by
// name with counts, sockets, listening addresses, paths opened or probed
// (with results), execs, mapped shared objects, filesystem types, ioctls,
// prctls and /proc and /sys paths.
//
// Every thread, fork, vfork, clone and exec is followed. By default a
// seccomp-bpf filter (installed by a small re-exec of the current binary
// just before it execs the program, see stub_linux.go) makes every syscall
// stop once, at entry, with PTRACE_EVENT_SECCOMP; only the syscalls whose
// result matters (path lookups, socket, bind, exec, ...) are also stopped
// at exit. Options.NoSeccomp traces with PTRACE_SYSCALL instead (two stops
// per syscall).
//
// The code is split so that the aggregation of syscall events into a
// manifest (recorder, in record.go) can be tested without ptrace: the
// tracer only turns stops into Events.
package trace
