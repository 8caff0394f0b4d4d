//go:build linux && amd64

package trace

import (
	"bufio"
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Function coverage (Options.Coverage): a one-shot breakpoint (int3) at
// the entry of every function of every executable file mapping of a traced
// process, armed when the mapping appears (at exec, and at the exit of an
// mmap with PROT_EXEC). The first time a function runs, its breakpoint
// traps; the tracer writes the original byte back, moves the instruction
// pointer back onto it, records the function and lets the process go on.

// bp is one breakpoint of an address space.
type bp struct {
	orig   byte
	hit    bool
	file   string
	offset uint64 // the function's offset in file
}

// space is the breakpoints of one address space (a process and its
// threads), by address.
type space struct {
	bps    map[uint64]*bp
	mapped map[string]bool // "start path" of the mappings armed
}

func newSpace() *space { return &space{bps: map[uint64]*bp{}, mapped: map[string]bool{}} }

// clone copies s for a forked child: its memory holds the same
// breakpoints.
func (s *space) clone() *space {
	c := newSpace()
	for a, b := range s.bps {
		nb := *b
		c.bps[a] = &nb
	}
	for k := range s.mapped {
		c.mapped[k] = true
	}
	return c
}

// armed reports whether the breakpoints of [start, end) not yet hit are
// still in memory (a sample of them is read).
func (s *space) armed(mem *os.File, start, end uint64) bool {
	n := 0
	var b [1]byte
	for a, bp := range s.bps {
		if a < start || a >= end || bp.hit {
			continue
		}
		if _, err := mem.ReadAt(b[:], int64(a)); err != nil || b[0] != 0xcc {
			return false
		}
		if n++; n == 8 {
			break
		}
	}
	return true
}

// coverage is the tracer's coverage state.
type coverage struct {
	funcs  func(path string) []uint64 // function entry offsets of an executable file
	cache  map[string][]uint64
	spaces map[int]*space             // by tgid
	ran    map[string]map[uint64]bool // file -> offsets of the functions that ran
}

func newCoverage(funcs func(string) []uint64) *coverage {
	return &coverage{funcs: funcs, cache: map[string][]uint64{}, spaces: map[int]*space{}, ran: map[string]map[uint64]bool{}}
}

func (c *coverage) space(tgid int) *space {
	s := c.spaces[tgid]
	if s == nil {
		s = newSpace()
		c.spaces[tgid] = s
	}
	return s
}

// fork gives a forked child its parent's breakpoints; a vfork'ed child
// (or one cloned with CLONE_VM) runs in its parent's memory, and shares
// them.
func (c *coverage) fork(parent, child int, shared bool) {
	s := c.spaces[parent]
	if s == nil || parent == child {
		return
	}
	if shared {
		c.spaces[child] = s
	} else {
		c.spaces[child] = s.clone()
	}
}

// exit forgets a process that ended: its pid may come back.
func (c *coverage) exit(tgid int) { delete(c.spaces, tgid) }

// parentOf returns the parent process of pid, from /proc/PID/stat.
func parentOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// exec forgets tgid's old address space and arms the new one.
func (c *coverage) exec(tgid int) {
	c.spaces[tgid] = newSpace()
	c.arm(tgid)
}

// arm puts breakpoints in the executable file mappings of tgid not yet
// armed.
func (c *coverage) arm(tgid int) {
	maps, err := os.ReadFile("/proc/" + strconv.Itoa(tgid) + "/maps")
	if err != nil {
		return
	}
	s := c.space(tgid)
	mem, err := os.OpenFile("/proc/"+strconv.Itoa(tgid)+"/mem", os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer mem.Close()
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// start-end perms offset dev inode path
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.Contains(f[1], "x") || !strings.HasPrefix(f[5], "/") || f[4] == "0" {
			continue
		}
		path := strings.Join(f[5:], " ")
		key := f[0] + " " + f[2] + " " + path
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		off, err3 := strconv.ParseUint(f[2], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil || end <= start {
			continue
		}
		// The same file at the same place: still the mapping armed, or a
		// new one (apache unloads its modules and loads them again between
		// its two configuration passes, at the same address)? A new one
		// has no int3 where breakpoints not yet hit were.
		if s.mapped[key] && s.armed(mem, start, end) {
			continue
		}
		// Breakpoints of what was mapped here before are gone with it.
		for a := range s.bps {
			if a >= start && a < end {
				delete(s.bps, a)
			}
		}
		s.mapped[key] = true
		offs, ok := c.cache[path]
		if !ok {
			offs = c.funcs(path)
			c.cache[path] = offs
		}
		if len(offs) == 0 {
			continue
		}
		// The original bytes come from the file: memory may hold a
		// breakpoint already (a child sharing its parent's memory).
		region := make([]byte, end-start)
		file, err := os.Open(path)
		if err != nil {
			continue
		}
		n, _ := file.ReadAt(region, int64(off))
		file.Close()
		region = region[:n]
		for _, fo := range offs {
			if fo < off || fo >= off+(end-start) {
				continue
			}
			a := start + (fo - off)
			if _, dup := s.bps[a]; dup || a-start >= uint64(len(region)) {
				continue
			}
			orig := region[a-start]
			if _, err := mem.WriteAt([]byte{0xcc}, int64(a)); err != nil {
				continue
			}
			s.bps[a] = &bp{orig: orig, file: path, offset: fo}
		}
	}
}

// siginfo's first fields.
type sigInfo struct {
	Signo, Errno, Code int32
}

// trap handles a SIGTRAP stop of tid (in tgid): when it is one of the
// breakpoints, it is recorded and undone, and trap reports true (the
// signal is not delivered).
func (c *coverage) trap(tid, tgid int) bool {
	var si [128]byte
	if _, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_GETSIGINFO, uintptr(tid), 0, uintptr(unsafe.Pointer(&si[0])), 0, 0); e != 0 {
		return false
	}
	info := (*sigInfo)(unsafe.Pointer(&si[0]))
	if info.Signo != int32(unix.SIGTRAP) || info.Code != 0x80 { // SI_KERNEL: int3
		return false
	}
	var regs unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &regs); err != nil {
		return false
	}
	s := c.spaces[tgid]
	if s == nil {
		// A forked child that trapped before its parent's fork event was
		// seen: it has its parent's breakpoints.
		c.fork(parentOf(tgid), tgid, false)
		if s = c.spaces[tgid]; s == nil {
			return false
		}
	}
	a := regs.Rip - 1
	b := s.bps[a]
	if b == nil {
		return false
	}
	// The byte goes back even when the breakpoint was hit before: another
	// thread may have trapped on it at the same time, or a forked child
	// copied the space after its parent had hit it, with int3 still in
	// the child's memory.
	if mem, err := os.OpenFile("/proc/"+strconv.Itoa(tgid)+"/mem", os.O_RDWR, 0); err == nil {
		mem.WriteAt([]byte{b.orig}, int64(a))
		mem.Close()
	}
	if !b.hit {
		b.hit = true
		ran := c.ran[b.file]
		if ran == nil {
			ran = map[uint64]bool{}
			c.ran[b.file] = ran
		}
		ran[b.offset] = true
	}
	regs.Rip = a
	return unix.PtraceSetRegs(tid, &regs) == nil
}

// result returns the functions that ran, by file: sorted offsets.
func (c *coverage) result() map[string][]uint64 {
	out := map[string][]uint64{}
	for f := range c.cache {
		if len(c.cache[f]) > 0 {
			out[f] = []uint64{}
		}
	}
	for f, ran := range c.ran {
		for o := range ran {
			out[f] = append(out[f], o)
		}
	}
	for f := range out {
		slices.Sort(out[f])
	}
	return out
}
