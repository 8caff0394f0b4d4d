package trace

import (
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/bespoke-os/bespoke/internal/manifest"
)

// Event is one syscall as the tracer saw it, with what it read from the
// tracee's memory and /proc at entry (and at exit when Exited).
type Event struct {
	Pid, Tid int
	Nr       int
	Args     [6]uint64
	// Exited is true when the result was observed; Ret is then the raw
	// return value (-errno on failure).
	Exited bool
	Ret    int64
	// Paths are the absolute paths the call names, in argument order
	// (for bind and connect: the AF_UNIX socket path).
	Paths []string
	// OpenFlags are the flags of open, openat, openat2 and creat.
	OpenFlags uint64
	// Existed is set for an open with O_CREAT when the path existed at entry.
	Existed bool
	// Argv is the argument vector of execve and execveat.
	Argv []string
	// Addr is the sockaddr passed to bind or connect.
	Addr *Sockaddr
	// Local is the socket's address after bind or listen, from the kernel,
	// and SockType its type, when they could be read.
	Local    *Sockaddr
	SockType string
	// FSType is mount's fstype argument, or the statfs/fstatfs f_type name.
	FSType string
	// Mapped is the file of an mmap with PROT_EXEC.
	Mapped string
}

// Syscall numbers the recorder decides on.
var (
	nrOpen       = mustNumber("open")
	nrCreat      = mustNumber("creat")
	nrOpenat     = mustNumber("openat")
	nrOpenat2    = mustNumber("openat2")
	nrExecve     = mustNumber("execve")
	nrExecveat   = mustNumber("execveat")
	nrSocket     = mustNumber("socket")
	nrSocketpair = mustNumber("socketpair")
	nrBind       = mustNumber("bind")
	nrListen     = mustNumber("listen")
	nrConnect    = mustNumber("connect")
	nrMount      = mustNumber("mount")
	nrStatfs     = mustNumber("statfs")
	nrFstatfs    = mustNumber("fstatfs")
	nrMmap       = mustNumber("mmap")
	nrIoctl      = mustNumber("ioctl")
	nrPrctl      = mustNumber("prctl")
	nrArchPrctl  = mustNumber("arch_prctl")
	nrMkdir      = mustNumber("mkdir")
	nrMkdirat    = mustNumber("mkdirat")
	// Credential changes: the argument indexes that are user ids (uid) or
	// group ids (gid).
	credArgs = map[int]struct{ uid, gid []int }{
		mustNumber("setuid"):    {uid: []int{0}},
		mustNumber("setreuid"):  {uid: []int{0, 1}},
		mustNumber("setresuid"): {uid: []int{0, 1, 2}},
		mustNumber("setfsuid"):  {uid: []int{0}},
		mustNumber("setgid"):    {gid: []int{0}},
		mustNumber("setregid"):  {gid: []int{0, 1}},
		mustNumber("setresgid"): {gid: []int{0, 1, 2}},
		mustNumber("setfsgid"):  {gid: []int{0}},
	}
)

// Open flags (x86_64).
const (
	oAccMode   = 0x3
	oCreat     = 0x40
	oTrunc     = 0x200
	oDirectory = 0x10000
)

// writeOps are path operations that change the filesystem.
var writeOps = map[string]bool{
	"mkdir": true, "rmdir": true, "unlink": true, "rename": true, "link": true, "symlink": true,
	"truncate": true, "chmod": true, "chown": true, "utime": true, "mknod": true,
}

type pathStat struct {
	ops     map[string]bool
	found   bool
	lastErr string
	write   bool
}

type listenKey struct {
	family, typ, addr string
	port              int
}

// recorder aggregates Events into the facts of a manifest. It is not safe
// for concurrent use: the tracer goroutine owns it.
type recorder struct {
	counts    []int
	other     map[int]int
	errors    map[int]map[string]int
	sockets   map[manifest.Socket]int
	listen    map[listenKey]bool // value: listening
	paths     map[string]*pathStat
	execs     []manifest.Exec
	libs      map[string]bool
	fsVia     map[string]map[string]bool
	ioctls    map[uint64]int
	prctls    map[[2]string]int
	procsys   map[string]bool
	created   map[string]bool
	uids      map[int]bool
	gids      map[int]bool
	processes int
	threads   int
}

func newRecorder() *recorder {
	return &recorder{
		counts:  make([]int, 1024),
		other:   map[int]int{},
		errors:  map[int]map[string]int{},
		sockets: map[manifest.Socket]int{},
		listen:  map[listenKey]bool{},
		paths:   map[string]*pathStat{},
		libs:    map[string]bool{},
		fsVia:   map[string]map[string]bool{},
		ioctls:  map[uint64]int{},
		prctls:  map[[2]string]int{},
		procsys: map[string]bool{},
		created: map[string]bool{},
		uids:    map[int]bool{},
		gids:    map[int]bool{},
	}
}

// count records one syscall that needs nothing more than counting.
func (r *recorder) count(nr int) {
	if nr >= 0 && nr < len(r.counts) {
		r.counts[nr]++
		return
	}
	r.other[nr]++ // x32 or unknown numbers: kept visible under their number
}

// task records one new task (a process when it leads its thread group).
func (r *recorder) task(process bool) {
	r.threads++
	if process {
		r.processes++
	}
}

func (r *recorder) fs(typ, via string) {
	if typ == "" {
		return
	}
	if r.fsVia[typ] == nil {
		r.fsVia[typ] = map[string]bool{}
	}
	r.fsVia[typ][via] = true
}

// result is "found", an errno name, or "" when the result was not seen.
func (ev *Event) result() string {
	switch {
	case !ev.Exited:
		return ""
	case ev.Ret < 0 && ev.Ret >= -4095:
		return errnoName(int(-ev.Ret))
	}
	return "found"
}

func (ev *Event) ok() bool { return ev.Exited && (ev.Ret >= 0 || ev.Ret < -4095) }

// add records one syscall with its details.
func (r *recorder) add(ev *Event) {
	r.count(ev.Nr)
	res := ev.result()
	if res != "" && res != "found" {
		if r.errors[ev.Nr] == nil {
			r.errors[ev.Nr] = map[string]int{}
		}
		r.errors[ev.Nr][res]++
	}
	a := ev.Args
	if c, ok := credArgs[ev.Nr]; ok {
		// -1 (as a 32-bit id) leaves an id unchanged.
		for _, i := range c.uid {
			if id := uint32(a[i]); id != ^uint32(0) {
				r.uids[int(id)] = true
			}
		}
		for _, i := range c.gid {
			if id := uint32(a[i]); id != ^uint32(0) {
				r.gids[int(id)] = true
			}
		}
	}
	switch ev.Nr {
	case nrSocket, nrSocketpair:
		if ev.Exited {
			sres := "ok"
			if res != "found" {
				sres = res
			}
			r.sockets[manifest.Socket{Domain: DomainName(a[0]), Type: SockTypeName(a[1]), Protocol: int(int32(a[2])), Result: sres}]++
		}
	case nrBind, nrListen:
		if !ev.ok() {
			break
		}
		sa, typ := ev.Local, ev.SockType
		if sa == nil && ev.Nr == nrBind {
			sa = ev.Addr
		}
		if sa == nil || (sa.Family != "AF_INET" && sa.Family != "AF_INET6" && sa.Family != "AF_UNIX") {
			break
		}
		k := listenKey{family: sa.Family, typ: typ, addr: sa.Address, port: sa.Port}
		r.listen[k] = r.listen[k] || ev.Nr == nrListen
	case nrMount:
		r.fs(ev.FSType, "mount")
	case nrStatfs, nrFstatfs:
		if ev.ok() {
			r.fs(ev.FSType, "statfs")
		}
	case nrMmap:
		if ev.Mapped != "" {
			r.libs[ev.Mapped] = true
		}
	case nrIoctl:
		r.ioctls[a[1]&0xffffffff]++
	case nrPrctl, nrArchPrctl:
		name := SyscallName(ev.Nr)
		r.prctls[[2]string{name, PrctlOptionName(name, a[0])}]++
	case nrExecve, nrExecveat:
		if len(ev.Paths) > 0 {
			argv := ev.Argv
			if argv == nil {
				argv = []string{}
			}
			er := res
			if er == "" {
				er = "unknown"
			}
			r.execs = append(r.execs, manifest.Exec{Path: ev.Paths[0], Argv: argv, Result: er})
		}
	}

	sp := specFor(ev.Nr)
	if sp == nil || sp.op == "" {
		return
	}
	op := sp.op
	write := writeOps[op]
	isOpen := ev.Nr == nrOpen || ev.Nr == nrOpenat || ev.Nr == nrOpenat2 || ev.Nr == nrCreat
	if isOpen {
		f := ev.OpenFlags
		if ev.Nr == nrCreat {
			f = oCreat | oTrunc | 1
		}
		write = f&oAccMode != 0 || f&(oCreat|oTrunc) != 0
		if f&oDirectory != 0 {
			op = "opendir"
		}
		if f&oCreat != 0 && !ev.Existed && ev.ok() && len(ev.Paths) > 0 {
			r.created[ev.Paths[0]] = true
		}
	}
	if (ev.Nr == nrMkdir || ev.Nr == nrMkdirat) && ev.ok() && len(ev.Paths) > 0 {
		r.created[ev.Paths[0]] = true
	}
	if (op == "rename" || op == "link" || op == "symlink") && ev.ok() && len(ev.Paths) > 0 {
		r.created[ev.Paths[len(ev.Paths)-1]] = true
	}
	for _, p := range ev.Paths {
		if p == "" {
			continue
		}
		ps := r.paths[p]
		if ps == nil {
			ps = &pathStat{ops: map[string]bool{}}
			r.paths[p] = ps
		}
		ps.ops[op] = true
		switch {
		case res == "found":
			ps.found = true
		case res != "":
			ps.lastErr = res
		}
		ps.write = ps.write || write
		if q, ok := procSysPath(p); ok {
			r.procsys[q] = true
		}
	}
}

// build turns what was recorded into a manifest (without Program, Exit and
// Workload, which the caller fills). Problems that do not stop the trace
// (a closure that cannot be computed) are passed to warn.
func (r *recorder) build(h host, program string, warn func(string)) *manifest.Manifest {
	m := &manifest.Manifest{Schema: manifest.Schema, Processes: r.processes, Threads: r.threads}
	for nr, c := range r.counts {
		if c == 0 {
			continue
		}
		m.Syscalls = append(m.Syscalls, manifest.Syscall{Name: SyscallName(nr), Nr: nr, Count: c, Errors: r.errors[nr]})
	}
	for nr, c := range r.other {
		m.Syscalls = append(m.Syscalls, manifest.Syscall{Name: SyscallName(nr), Nr: nr, Count: c, Errors: r.errors[nr]})
	}
	for s, c := range r.sockets {
		s.Count = c
		m.Sockets = append(m.Sockets, s)
	}
	for k, l := range r.listen {
		m.Listen = append(m.Listen, manifest.Listen{Family: k.family, Type: k.typ, Address: k.addr, Port: k.port, Listening: l})
	}
	m.Execs = slices.Clone(r.execs)
	for l := range r.libs {
		m.Libraries = append(m.Libraries, l)
	}
	for req, c := range r.ioctls {
		m.Ioctls = append(m.Ioctls, manifest.Ioctl{Request: req, Name: IoctlName(req), Count: c})
	}
	for k, c := range r.prctls {
		m.Prctls = append(m.Prctls, manifest.Prctl{Syscall: k[0], Option: k[1], Count: c})
	}
	for p := range r.procsys {
		m.ProcSys = append(m.ProcSys, p)
	}
	for id := range r.uids {
		m.UIDs = append(m.UIDs, id)
	}
	for id := range r.gids {
		m.GIDs = append(m.GIDs, id)
	}

	// Paths, and the filesystems the paths that were found live on.
	for p, ps := range r.paths {
		mp := manifest.Path{Path: p, Write: ps.write}
		for op := range ps.ops {
			mp.Ops = append(mp.Ops, op)
		}
		switch {
		case ps.found:
			mp.Result = "found"
			r.fs(h.MountType(p), "path")
		case ps.lastErr != "":
			mp.Result = ps.lastErr
		default:
			mp.Result = "unknown"
		}
		if fi, err := h.Lstat(p); err == nil {
			mp.Type = fileType(fi.Mode())
		}
		m.Paths = append(m.Paths, mp)
	}
	for typ, via := range r.fsVia {
		f := manifest.Filesystem{Type: typ}
		for v := range via {
			f.Via = append(f.Via, v)
		}
		m.Filesystems = append(m.Filesystems, f)
	}

	m.Closure = r.closure(h, program, warn)
	m.Files, m.Excluded, m.Closure = r.files(h, m.Closure)
	m.Normalize()
	return m
}

// closureRank orders kinds when one file is reached in several ways.
var closureRank = map[string]int{"program": 0, "interpreter": 1, "script-interpreter": 2, "library": 3, "exec": 4}

func addFile(set map[string]manifest.File, f manifest.File) {
	old, ok := set[f.Path]
	if !ok || closureRank[f.Kind] < closureRank[old.Kind] {
		set[f.Path] = f
	}
}

// closure is the ELF closure of the program (the path it was exec'ed at),
// of every program exec'ed successfully, and of every shared object
// mapped.
func (r *recorder) closure(h host, program string, warn func(string)) []manifest.File {
	set := map[string]manifest.File{}
	add := func(p, selfKind string) {
		fs, err := h.Closure(p)
		if err != nil {
			warn(fmt.Sprintf("computing the ELF closure of %s: %v", p, err))
			return
		}
		for _, f := range fs {
			if f.Kind == "program" {
				f.Kind = selfKind
			}
			addFile(set, f)
		}
	}
	if program != "" {
		add(program, "program")
	}
	var execs []string
	for _, e := range r.execs {
		if e.Result == "found" && e.Path != program {
			execs = append(execs, e.Path)
		}
	}
	sort.Strings(execs)
	for _, p := range slices.Compact(execs) {
		add(p, "exec")
	}
	// Mapped objects are real files (read from /proc/PID/fd); their own
	// dependencies were mapped too, so each one is listed by itself.
	for _, l := range slices.Sorted(maps.Keys(r.libs)) {
		f := manifest.File{Path: l, Kind: "library"}
		if fi, err := h.Lstat(l); err == nil && fi.Mode().IsRegular() {
			f.Size = fi.Size()
		}
		addFile(set, f)
	}
	out := make([]manifest.File, 0, len(set))
	for _, f := range set {
		out = append(out, f)
	}
	return out
}

// files selects the paths used successfully that an image needs, and the
// sensitive ones it must not get. Opened paths that lead to a mapped
// library join the closure.
func (r *recorder) files(h host, closure []manifest.File) (files []manifest.File, excluded []manifest.Excluded, outClosure []manifest.File) {
	inClosure := map[string]bool{}
	for _, f := range closure {
		inClosure[f.Path] = true
	}
	set := map[string]manifest.File{}
	dirs := map[string]bool{}
	for _, p := range slices.Sorted(maps.Keys(r.paths)) {
		ps := r.paths[p]
		if !ps.found || hostOnly(p) || inClosure[p] {
			continue
		}
		if _, err := h.Lstat(p); err != nil {
			continue // gone by the end: a temporary file
		}
		if r.created[p] {
			// Made by the program: its directory is needed, not the file.
			if d := path.Dir(p); !hostOnly(d) && !inClosure[d] {
				dirs[d] = true
			}
			continue
		}
		chain, final := resolveChain(h, p)
		ffi, err := h.Lstat(final)
		if err != nil {
			continue // a dangling symlink
		}
		head := []byte(nil)
		if ffi.Mode().IsRegular() {
			head = h.Head(final)
		}
		if reason, bad := sensitiveAny(head, p, final); bad {
			excluded = append(excluded, manifest.Excluded{Path: p, Reason: reason})
			if final != p {
				excluded = append(excluded, manifest.Excluded{Path: final, Reason: reason})
			}
			continue
		}
		if r.libs[final] || inClosure[final] {
			for _, c := range chain {
				c.Kind = "library"
				closure = append(closure, c)
				inClosure[c.Path] = true
			}
			continue
		}
		t := fileType(ffi.Mode())
		if t != "file" && t != "dir" {
			continue
		}
		kind := "data"
		switch {
		case t == "dir":
			kind = "dir"
		case strings.HasPrefix(p, "/etc/") || strings.HasPrefix(final, "/etc/"):
			kind = "config"
		}
		for _, c := range chain {
			if hostOnly(c.Path) || inClosure[c.Path] {
				continue
			}
			c.Kind = kind
			if c.Link == "" && t == "file" {
				c.Size = ffi.Size()
			}
			if c.Link != "" && c.Path != p {
				// A symlink on the way: a directory, or the file itself.
				_, to := resolveChain(h, c.Path)
				if tfi, err := h.Lstat(to); err == nil && tfi.IsDir() {
					c.Kind = "dir"
				}
			}
			addFile(set, c)
		}
	}
	for d := range dirs {
		if _, ok := set[d]; ok {
			continue
		}
		if fi, err := h.Lstat(d); err == nil && fi.IsDir() {
			set[d] = manifest.File{Path: d, Kind: "dir"}
		}
	}
	for _, f := range set {
		files = append(files, f)
	}
	return files, excluded, closure
}

func sensitiveAny(head []byte, ps ...string) (string, bool) {
	for _, p := range ps {
		if reason, ok := Sensitive(p, head); ok {
			return reason, true
		}
	}
	return "", false
}

// resolveChain follows the symlinks in p, component by component, and
// returns every symlink met (with Link set) followed by the final file, and
// the final path.
func resolveChain(h host, p string) ([]manifest.File, string) {
	var chain []manifest.File
	seen := map[string]bool{}
	cur := "/"
	rest := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	for hops := 0; len(rest) > 0 && hops < 40; {
		c := rest[0]
		rest = rest[1:]
		if c == "" || c == "." {
			continue
		}
		next := path.Join(cur, c)
		fi, err := h.Lstat(next)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		link, err := h.Readlink(next)
		if err != nil {
			cur = next
			continue
		}
		hops++
		if !seen[next] {
			seen[next] = true
			chain = append(chain, manifest.File{Path: next, Link: link})
		}
		target := link
		if !path.IsAbs(target) {
			target = path.Join(cur, target)
		}
		rest = append(strings.Split(strings.TrimPrefix(path.Clean(target), "/"), "/"), rest...)
		cur = "/"
	}
	chain = append(chain, manifest.File{Path: cur})
	return chain, cur
}

func fileType(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "dir"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeCharDevice != 0:
		return "char"
	case m&fs.ModeDevice != 0:
		return "block"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	}
	return ""
}
