// Package manifest defines the contract between application analysis and
// the rest of bespoke: a JSON record of what one program did while it ran.
//
// A manifest records facts, not decisions. It is versioned by its Schema
// field, and it is deterministic: every list is sorted, so two traces of the
// same run can be compared with diff. It imports nothing else of bespoke.
package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Schema is the version of the manifest format this package writes.
const Schema = 1

// Manifest is everything the tracer learned about one program run.
type Manifest struct {
	Schema int `json:"schema"`

	// Program is what was run: the path as given, resolved, and its args.
	Program Program `json:"program"`
	// Exit is how the traced program ended.
	Exit *Exit `json:"exit,omitempty"`
	// Workload is the workload command run while the program was ready.
	Workload *Workload `json:"workload,omitempty"`

	// Processes and Threads count every task seen (the program included).
	Processes int `json:"processes"`
	Threads   int `json:"threads"`

	Syscalls  []Syscall `json:"syscalls"`
	Sockets   []Socket  `json:"sockets"`
	Listen    []Listen  `json:"listen"`
	Paths     []Path    `json:"paths"`
	Execs     []Exec    `json:"execs"`
	Libraries []string  `json:"libraries"` // shared objects mmap'ed by any traced process
	// FunctionsRun are, per executable file a traced process mapped, the
	// file offsets of the function entries that ran (trace
	// Options.Coverage; bespoke build --shake-libs profile); a file with
	// an empty list was mapped and none of its functions ran.
	FunctionsRun map[string][]uint64 `json:"functions_run,omitempty"`
	Filesystems  []Filesystem        `json:"filesystems"` // filesystem types used or probed
	Ioctls       []Ioctl             `json:"ioctls"`
	Prctls       []Prctl             `json:"prctls"`
	// ProcSys lists /proc and /sys paths that were opened or probed.
	ProcSys []string `json:"procsys"`
	// UIDs and GIDs are the user and group ids the program switched to
	// (the arguments of setuid, setresuid, setgid, setresgid, ...), e.g. a
	// server started as root that drops to www-data for its workers.
	UIDs []int `json:"uids,omitempty"`
	GIDs []int `json:"gids,omitempty"`

	// Closure is the ELF closure of the program (and of each exec'ed
	// program): interpreter, shared libraries, script interpreters, with
	// symlink chains kept.
	Closure []File `json:"closure"`
	// Files are the regular files, directories and symlinks the program
	// used successfully, marked for inclusion in an image.
	Files []File `json:"files"`
	// Excluded are files the program used that must never be copied into
	// an image (credentials, private keys), each with the reason.
	Excluded []Excluded `json:"excluded"`
}

// Program describes the traced command.
type Program struct {
	Path     string   `json:"path"`     // as given on the command line
	Resolved string   `json:"resolved"` // absolute path after $PATH lookup and symlinks
	Args     []string `json:"args"`     // argv[1:]
	// Interpreter is set when the program is a #! script.
	Interpreter string `json:"interpreter,omitempty"`
	// Kind is "static", "static-pie", "dynamic" or "script".
	Kind string `json:"kind"`
}

// Exit is how a process ended: with a code, or killed by a signal.
type Exit struct {
	Code   int    `json:"code"`
	Signal string `json:"signal,omitempty"` // e.g. "SIGSEGV"
	// Stopped is true when bespoke stopped the program (after the
	// workload, or at --timeout) rather than the program exiting by itself.
	Stopped bool `json:"stopped,omitempty"`
}

// Workload is a workload command and what it did.
type Workload struct {
	Command  string  `json:"command"`
	ExitCode int     `json:"exit_code"`
	Output   string  `json:"output,omitempty"` // combined stdout+stderr, possibly truncated
	Seconds  float64 `json:"seconds"`
}

// Syscall is one syscall by name, with how often it was made and how often
// it failed, by errno name.
type Syscall struct {
	Name   string         `json:"name"`
	Nr     int            `json:"nr"`
	Count  int            `json:"count"`
	Errors map[string]int `json:"errors,omitempty"` // e.g. {"ENOENT": 3}; only where results were observed
}

// Socket is one socket(2) triple with a count.
type Socket struct {
	Domain   string `json:"domain"`   // "AF_INET", "AF_UNIX", "AF_NETLINK", ...
	Type     string `json:"type"`     // "SOCK_STREAM", "SOCK_DGRAM", ... (flags stripped)
	Protocol int    `json:"protocol"` // raw protocol number
	Count    int    `json:"count"`
	// Result is "ok" or an errno name, e.g. "EAFNOSUPPORT".
	Result string `json:"result"`
}

// Listen is an address the program bound (and possibly listened on).
type Listen struct {
	Family    string `json:"family"`  // "AF_INET", "AF_INET6", "AF_UNIX"
	Type      string `json:"type"`    // "SOCK_STREAM", "SOCK_DGRAM"
	Address   string `json:"address"` // IP address, or the unix socket path
	Port      int    `json:"port,omitempty"`
	Listening bool   `json:"listening"` // listen(2) was called on it
}

// Path is one filesystem path the program touched, with every way it was
// touched and the result.
type Path struct {
	Path string `json:"path"`
	// Ops are the operations seen, sorted: "open", "stat", "access",
	// "exec", "readlink", "opendir", "mkdir", "unlink", "rename", "chdir",
	// "mount", "statfs", "connect", "bind", ...
	Ops []string `json:"ops"`
	// Result is "found" or an errno name ("ENOENT", "EACCES", ...). When a
	// path was both found and missing over the run, "found" wins.
	Result string `json:"result"`
	// Write is true when the path was opened for writing or created.
	Write bool `json:"write,omitempty"`
	// Type is "file", "dir", "symlink", "char", "block", "socket", "fifo"
	// when known from the host at the end of the trace.
	Type string `json:"type,omitempty"`
}

// Exec is one execve/execveat, successful or not.
type Exec struct {
	Path   string   `json:"path"`
	Argv   []string `json:"argv"`
	Result string   `json:"result"` // "found" or an errno name
}

// Filesystem is a filesystem type with the evidence for it.
type Filesystem struct {
	Type string `json:"type"` // "ext4", "proc", "sysfs", "tmpfs", ...
	// Via lists the evidence: "mount", "statfs", "path" (an opened path lives on it).
	Via []string `json:"via"`
}

// Ioctl is one ioctl request number with a count.
type Ioctl struct {
	Request uint64 `json:"request"`
	Name    string `json:"name,omitempty"` // e.g. "TCGETS", "FIONBIO" when known
	Count   int    `json:"count"`
}

// Prctl is one prctl or arch_prctl option with a count.
type Prctl struct {
	Syscall string `json:"syscall"` // "prctl" or "arch_prctl"
	Option  string `json:"option"`  // e.g. "PR_SET_NAME", "ARCH_SET_FS", or a number
	Count   int    `json:"count"`
}

// File is one file for an image, with the symlink chain kept.
type File struct {
	Path string `json:"path"`
	// Kind says why the file is there: "program", "interpreter",
	// "library", "script-interpreter", "exec", "data", "config", "dir".
	Kind string `json:"kind"`
	// Link is the symlink target (as stored in the link) when Path is a
	// symlink. The target is listed as a File of its own.
	Link string `json:"link,omitempty"`
	Size int64  `json:"size,omitempty"`
}

// Excluded is a file the program used that is never copied into an image.
type Excluded struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Normalize sorts every list and deduplicates where a duplicate carries no
// information, so that the JSON encoding is deterministic. Nil slices
// become empty ones so that every key is present.
func (m *Manifest) Normalize() {
	if m.Schema == 0 {
		m.Schema = Schema
	}
	slices.SortFunc(m.Syscalls, func(a, b Syscall) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(m.Sockets, func(a, b Socket) int {
		return cmpStrings(a.Domain, b.Domain, a.Type, b.Type, fmt.Sprint(a.Protocol), fmt.Sprint(b.Protocol), a.Result, b.Result)
	})
	slices.SortFunc(m.Listen, func(a, b Listen) int {
		return cmpStrings(a.Family, b.Family, a.Type, b.Type, a.Address, b.Address, fmt.Sprintf("%05d", a.Port), fmt.Sprintf("%05d", b.Port))
	})
	for i := range m.Paths {
		slices.Sort(m.Paths[i].Ops)
		m.Paths[i].Ops = slices.Compact(m.Paths[i].Ops)
	}
	slices.SortFunc(m.Paths, func(a, b Path) int { return strings.Compare(a.Path, b.Path) })
	slices.SortStableFunc(m.Execs, func(a, b Exec) int {
		return cmpStrings(a.Path, b.Path, strings.Join(a.Argv, "\x00"), strings.Join(b.Argv, "\x00"))
	})
	m.Execs = slices.CompactFunc(m.Execs, func(a, b Exec) bool {
		return a.Path == b.Path && slices.Equal(a.Argv, b.Argv) && a.Result == b.Result
	})
	slices.Sort(m.Libraries)
	m.Libraries = slices.Compact(m.Libraries)
	for i := range m.Filesystems {
		slices.Sort(m.Filesystems[i].Via)
		m.Filesystems[i].Via = slices.Compact(m.Filesystems[i].Via)
	}
	slices.SortFunc(m.Filesystems, func(a, b Filesystem) int { return strings.Compare(a.Type, b.Type) })
	slices.SortFunc(m.Ioctls, func(a, b Ioctl) int {
		switch {
		case a.Request < b.Request:
			return -1
		case a.Request > b.Request:
			return 1
		}
		return 0
	})
	slices.SortFunc(m.Prctls, func(a, b Prctl) int { return cmpStrings(a.Syscall, b.Syscall, a.Option, b.Option) })
	slices.Sort(m.ProcSys)
	m.ProcSys = slices.Compact(m.ProcSys)
	slices.Sort(m.UIDs)
	m.UIDs = slices.Compact(m.UIDs)
	slices.Sort(m.GIDs)
	m.GIDs = slices.Compact(m.GIDs)
	m.Closure = sortFiles(m.Closure)
	m.Files = sortFiles(m.Files)
	slices.SortFunc(m.Excluded, func(a, b Excluded) int { return strings.Compare(a.Path, b.Path) })
	m.Excluded = slices.CompactFunc(m.Excluded, func(a, b Excluded) bool { return a.Path == b.Path })

	if m.Program.Args == nil {
		m.Program.Args = []string{}
	}
	m.Syscalls = nonNil(m.Syscalls)
	m.Sockets = nonNil(m.Sockets)
	m.Listen = nonNil(m.Listen)
	m.Paths = nonNil(m.Paths)
	m.Execs = nonNil(m.Execs)
	m.Libraries = nonNil(m.Libraries)
	m.Filesystems = nonNil(m.Filesystems)
	m.Ioctls = nonNil(m.Ioctls)
	m.Prctls = nonNil(m.Prctls)
	m.ProcSys = nonNil(m.ProcSys)
	m.Closure = nonNil(m.Closure)
	m.Files = nonNil(m.Files)
	m.Excluded = nonNil(m.Excluded)
}

func sortFiles(fs []File) []File {
	slices.SortFunc(fs, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return slices.CompactFunc(fs, func(a, b File) bool { return a.Path == b.Path })
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// cmpStrings compares pairs (a0,b0), (a1,b1), ... in order.
func cmpStrings(pairs ...string) int {
	for i := 0; i+1 < len(pairs); i += 2 {
		if c := strings.Compare(pairs[i], pairs[i+1]); c != 0 {
			return c
		}
	}
	return 0
}

// Encode writes m as indented JSON after normalizing it.
func (m *Manifest) Encode(w io.Writer) error {
	m.Normalize()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("encoding manifest: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// Decode reads a manifest and checks its schema version.
func Decode(r io.Reader) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding manifest: %w", err)
	}
	if m.Schema != Schema {
		return nil, fmt.Errorf("manifest schema %d is not supported (this bespoke reads schema %d): trace the program again", m.Schema, Schema)
	}
	m.Normalize()
	return &m, nil
}

// ReadFile reads and decodes the manifest at path.
func ReadFile(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	defer f.Close()
	m, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// WriteFile encodes m to path atomically (a temporary file renamed into place).
func (m *Manifest) WriteFile(path string) error {
	var buf bytes.Buffer
	if err := m.Encode(&buf); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dirOf(path), ".manifest-*.json")
	if err != nil {
		return fmt.Errorf("writing manifest: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("writing manifest: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing manifest: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("writing manifest: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing manifest: %w", err)
	}
	return nil
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		if i == 0 {
			return "/"
		}
		return path[:i]
	}
	return "."
}

// Syscall returns the entry for name, or nil.
func (m *Manifest) Syscall(name string) *Syscall {
	for i := range m.Syscalls {
		if m.Syscalls[i].Name == name {
			return &m.Syscalls[i]
		}
	}
	return nil
}
