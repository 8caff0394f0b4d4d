// Package libshake removes the code of an image's shared libraries and
// programs that nothing can reach: tree-shaking from the outside, without
// the program's source.
//
// Functions are the ranges of .eh_frame's FDEs inside .text. A function is
// kept when it is reachable, conservatively, from the roots: each object's
// entry point, DT_INIT and DT_FINI and the init/fini arrays, every address
// data points at (RELATIVE and IRELATIVE relocations, symbols stored in
// data), the personality routines and landing pads of live functions,
// every exported function whose name is a string in some object's
// read-only data (a name dlsym may look up), and Options.Keep. From a live
// function, its direct calls and jumps, its RIP-relative references
// (function pointers, jump tables, GOT slots) and the PLT stubs it calls
// are followed; an imported symbol makes live every function of that name
// any object of the closure exports. Code between FDEs is never removed.
//
// Removal keeps every address where it is: a removed function's bytes are
// overwritten with int3 in the image's copy of the file, so that the
// compressed root loses them and a call that was not foreseen traps with
// the function's address. Objects that cannot be analysed safely (no
// .eh_frame, an instruction the decoder does not know, another machine,
// the dynamic loader) are kept whole, with the reason.
package libshake

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/bespoke-os/bespoke/internal/atomicdir"
)

// Object is one ELF file of an image.
type Object struct {
	Path string // where the image has it
	Host string // the file to read
	// Loader is the dynamic loader: kept whole.
	Loader bool
}

// Options says what to shake.
type Options struct {
	Objects []Object
	// Keep names functions that must stay, per Object.Path: a symbol name,
	// a removed-function name from an earlier map (fn_ADDR), or 0xADDR.
	Keep map[string][]string
	// Remove names functions removed even if reachable, per Object.Path
	// (symbol names): a path known to be dead, or a planted fault.
	Remove map[string][]string
	// Ran, when set, is a profile: per host file (Object.Host, symlinks
	// resolved), the file offsets of the function entries that ran under
	// the workload (trace Options.Coverage). An object it lists keeps
	// only those functions, the ones Keep names, and the ones entered
	// where no breakpoint can see it (a reference from a function that
	// ran into the middle of another: a cold part's jump table entry, a
	// landing pad, glibc's signal return trampoline, whose FDE starts a
	// byte early). Objects it does not list were never mapped: the static
	// analysis decides for them.
	Ran map[string][]uint64
}

// Function is a removed function of an object.
type Function struct {
	Name  string `json:"name"`
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
}

// Result is what shaking one object found.
type Result struct {
	Path string `json:"path"`
	// Whole says why the object is kept whole; "" when it was shaken.
	Whole     string `json:"kept_whole,omitempty"`
	Functions int    `json:"functions"`
	Removed   int    `json:"removed"`
	// TextBytes is the size of .text, RemovedBytes the bytes of it
	// overwritten.
	TextBytes    int64 `json:"text_bytes"`
	RemovedBytes int64 `json:"removed_bytes"`
	// GadgetsBefore and GadgetsAfter count the ROP gadgets of .text
	// (Gadgets) in the host's file and in the shaken copy.
	GadgetsBefore int `json:"gadgets_before"`
	GadgetsAfter  int `json:"gadgets_after"`
	// Unknown are names in Options.Keep that matched no function.
	Unknown []string `json:"unknown_keep,omitempty"`

	Ranges     []Function `json:"-"`
	host       string
	textAddr   uint64
	textOffset uint64
}

// offset is the file offset of the .text address a.
func (r *Result) offset(a uint64) int64 { return int64(a - r.textAddr + r.textOffset) }

// Restore returns the map entry o with function name restored, and
// writes o's host file to out with the other removed functions
// overwritten by int3. The caller checks that the host file is the one
// the map was made from (HostSHA256).
func (o MapObject) Restore(name, out string) (MapObject, error) {
	r := &Result{Path: o.Path, host: o.Host, textAddr: o.TextAddr, textOffset: o.TextOffset}
	found := false
	for _, f := range o.Removed {
		if f.Name == name {
			found = true
			continue
		}
		r.Ranges = append(r.Ranges, f)
	}
	if !found {
		return o, fmt.Errorf("restoring %s in %s: it was not removed", name, o.Path)
	}
	if err := r.Write(out); err != nil {
		return o, err
	}
	o.Removed = r.Ranges
	return o, nil
}

// Shake analyses the objects and returns one Result per object, in order.
func Shake(opts Options) ([]*Result, error) {
	s := &shaker{exporters: map[string][]*object{}, liveName: map[string]bool{}}
	defer func() {
		for _, o := range s.objs {
			o.close()
		}
	}()
	for _, obj := range opts.Objects {
		o, err := load(obj)
		if err != nil {
			return nil, fmt.Errorf("shaking %s: %w", obj.Path, err)
		}
		s.objs = append(s.objs, o)
		for name := range o.exports {
			s.exporters[name] = append(s.exporters[name], o)
		}
	}
	results := make([]*Result, len(s.objs))
	for i, o := range s.objs {
		results[i] = &Result{Path: o.Path, host: o.Host}
		if o.text != nil {
			results[i].TextBytes = int64(o.text.Size)
			results[i].textAddr, results[i].textOffset = o.text.Addr, o.text.Offset
		}
	}
	// Roots.
	for _, o := range s.objs {
		for _, a := range o.roots {
			s.markAddr(o, a)
		}
		for _, n := range o.rootSym {
			s.markName(n)
		}
		// Code outside .text (.init, .fini, any other executable section
		// but the PLT) is never removed, and what it reaches stays.
		for _, sec := range o.elf.Sections {
			if sec.Flags&elf.SHF_EXECINSTR == 0 || sec == o.text || slices.Contains(o.plts, sec) {
				continue
			}
			if sec.Type != elf.SHT_PROGBITS {
				continue
			}
			if data, err := sec.Data(); err == nil {
				s.scan(o, sec.Addr, data, true)
			}
		}
		for _, str := range o.strs {
			if len(s.exporters[str]) > 0 {
				s.markName(str)
			}
		}
	}
	for i, o := range s.objs {
		for _, k := range opts.Keep[o.Path] {
			if !s.keep(o, k) {
				results[i].Unknown = append(results[i].Unknown, k)
			}
		}
	}
	for _, o := range s.objs {
		if o.whole != "" {
			s.makeWhole(o)
		}
	}
	s.run()
	for _, o := range s.objs {
		if ran, ok := opts.Ran[realPath(o.Host)]; ok && o.whole == "" {
			s.profile(o, ran)
		}
	}
	for _, o := range s.objs {
		for _, name := range opts.Remove[o.Path] {
			found := false
			for i, f := range o.funcs {
				if !f.gap && o.names[f.start] == name {
					o.funcs[i].live, found = false, true
				}
			}
			if !found || o.whole != "" {
				why := "no function of that name"
				if o.whole != "" {
					why = "it is kept whole: " + o.whole
				}
				return nil, fmt.Errorf("removing %s from %s: %s", name, o.Path, why)
			}
		}
	}
	for i, o := range s.objs {
		r := results[i]
		if o.text != nil && o.textData != nil {
			r.GadgetsBefore = Gadgets(o.textData)
			r.GadgetsAfter = r.GadgetsBefore
		}
		if o.whole != "" {
			r.Whole = o.whole
			continue
		}
		for _, f := range o.funcs {
			if f.gap {
				continue
			}
			r.Functions++
			if !f.live {
				r.Removed++
				r.RemovedBytes += int64(f.end - f.start)
				r.Ranges = append(r.Ranges, Function{Name: o.name(f), Start: f.start, End: f.end})
			}
		}
		if len(r.Ranges) > 0 {
			text := bytes.Clone(o.textData)
			for _, f := range r.Ranges {
				for a := f.Start; a < f.End; a++ {
					text[a-o.text.Addr] = 0xcc
				}
			}
			r.GadgetsAfter = Gadgets(text)
		}
	}
	return results, nil
}

type shaker struct {
	objs      []*object
	exporters map[string][]*object
	liveName  map[string]bool
	work      []workItem
}

type workItem struct {
	o *object
	i int
}

// keep makes the function k names (a symbol, fn_ADDR or 0xADDR) live.
func (s *shaker) keep(o *object, k string) bool {
	var addrs []uint64
	if h, ok := strings.CutPrefix(k, "fn_"); ok {
		if a, err := strconv.ParseUint(h, 16, 64); err == nil {
			addrs = append(addrs, a)
		}
	} else if a, err := strconv.ParseUint(k, 0, 64); err == nil && strings.HasPrefix(k, "0x") {
		addrs = append(addrs, a)
	}
	for a, n := range o.names {
		if n == k {
			addrs = append(addrs, a)
		}
	}
	found := false
	for _, a := range addrs {
		if i := o.find(a); i >= 0 {
			found = true
			s.markAddr(o, a)
			o.kept = append(o.kept, i)
		}
	}
	return found
}

// makeWhole marks every function of o live and every symbol it imports.
func (s *shaker) makeWhole(o *object) {
	for i := range o.funcs {
		o.funcs[i].live = true
	}
	for _, n := range o.gotSym {
		s.markName(n)
	}
}

// markName makes live every function named n that an object exports.
func (s *shaker) markName(n string) {
	if s.liveName[n] {
		return
	}
	s.liveName[n] = true
	for _, o := range s.exporters[n] {
		for _, a := range o.exports[n] {
			s.markAddr(o, a)
		}
	}
}

// markAddr makes live what address a of o is: a function, a PLT stub (the
// symbol it jumps to) or a GOT slot (the symbol it holds).
func (s *shaker) markAddr(o *object, a uint64) {
	if n, ok := o.gotSym[a]; ok {
		s.markName(n)
		return
	}
	if o.text == nil {
		return
	}
	if i := o.find(a); i >= 0 {
		if !o.funcs[i].live {
			o.funcs[i].live = true
			s.work = append(s.work, workItem{o, i})
		}
		return
	}
	for _, p := range o.plts {
		if a >= p.Addr && a < p.Addr+p.Size {
			size := p.Entsize
			if size == 0 || size > 16 {
				size = 16
			}
			stub := p.Addr + (a-p.Addr)/size*size
			data := make([]byte, size)
			if _, err := p.ReadAt(data, int64(stub-p.Addr)); err == nil {
				s.scan(o, stub, data, true)
			}
			return
		}
	}
}

func (s *shaker) run() {
	for len(s.work) > 0 {
		w := s.work[len(s.work)-1]
		s.work = s.work[:len(s.work)-1]
		o, f := w.o, w.i
		if o.whole != "" {
			continue
		}
		fun := o.funcs[f]
		if err := s.scan(o, fun.start, o.code(fun), fun.gap); err != nil {
			o.setWhole(err.Error())
			s.makeWhole(o)
			continue
		}
		// Code may run on past its FDE into code without one: glibc's
		// clone3 ends its FDE before the syscall, and the child's path
		// after it has an FDE of its own, reached only from there.
		if !fun.gap && f+1 < len(o.funcs) && o.funcs[f+1].gap {
			s.markAddr(o, o.funcs[f+1].start)
		}
		if fun.personality != 0 {
			s.markAddr(o, fun.personality)
		}
		if fun.lsda != 0 && o.except != nil {
			pads, err := landingPads(o.exceptData, o.except.Addr, fun.lsda, fun.start)
			if err != nil {
				o.setWhole(fmt.Sprintf("the exception table of the function at %#x: %v", fun.start, err))
				s.makeWhole(o)
				continue
			}
			for _, p := range pads {
				s.markAddr(o, p)
			}
		}
	}
}

// scan decodes code (at address addr) and marks what it references. With
// tolerant set (code outside any FDE: padding, data), an instruction that
// does not decode is stepped over; otherwise it is an error.
func (s *shaker) scan(o *object, addr uint64, code []byte, tolerant bool) error {
	for off := 0; off < len(code); {
		pc := addr + uint64(off)
		in, err := decode(code[off:])
		if err != nil {
			if tolerant {
				off++
				continue
			}
			end := min(off+15, len(code))
			return fmt.Errorf("an instruction the decoder does not know at %#x (% x)", pc, code[off:end])
		}
		next := pc + uint64(in.len)
		switch {
		case in.branch:
			s.markAddr(o, next+uint64(in.rel))
		case in.ripRel:
			s.markData(o, next+uint64(in.disp), !in.vex && in.m == 0 && in.op == 0x8d)
		case in.absMem && o.exec:
			s.markAddr(o, uint64(in.disp))
			if in.index && in.scale == 8 {
				s.absTable(o, uint64(in.disp))
			}
		}
		if in.hasImm && o.exec {
			s.markAddr(o, uint64(in.imm))
		}
		off += in.len
	}
	return nil
}

// markData marks what a code reference to address t reaches: a function
// (a pointer taken), a PLT stub or GOT slot, or a table of offsets
// relative to t (a position-independent jump table, which may jump into
// another FDE's range: a function's cold part).
func (s *shaker) markData(o *object, t uint64, lea bool) {
	s.markAddr(o, t)
	if lea {
		o.jumpTable(t, func(a uint64) { s.markAddr(o, a) })
	}
}

// jumpTable calls visit with the entries of the table of 32-bit offsets
// relative to t (a position-independent jump table, loaded with lea),
// while they land in .text.
func (o *object) jumpTable(t uint64, visit func(uint64)) {
	if t&3 != 0 || o.text == nil {
		return
	}
	lo, hi := o.text.Addr, o.text.Addr+o.text.Size
	for i := uint64(0); i < 4096; i++ {
		v, ok := o.word32(t + 4*i)
		if !ok {
			return
		}
		target := t + uint64(int64(int32(v)))
		if target < lo || target >= hi {
			return
		}
		visit(target)
	}
}

// absTable marks the entries of a table of absolute addresses at t (an
// ET_EXEC's jump table), while they fall in .text.
func (s *shaker) absTable(o *object, t uint64) {
	lo, hi := o.text.Addr, o.text.Addr+o.text.Size
	for i := uint64(0); i < 4096; i++ {
		v, ok := o.word(t + 8*i)
		if !ok || v < lo || v >= hi {
			return
		}
		s.markAddr(o, v)
	}
}

func (o *object) word32(addr uint64) (uint32, bool) {
	v, ok := o.word(addr &^ 7)
	if !ok {
		return 0, false
	}
	return uint32(v >> (8 * (addr & 7))), true
}

// Write copies r's object to out with its removed functions overwritten
// by int3 (0xcc), and the call frame instructions of their FDEs by
// DW_CFA_nop (0): nothing unwinds through a function that never runs,
// and an FDE of nops is still one (its length, CIE pointer, range and
// LSDA pointer are kept, so .eh_frame_hdr's table and every reader of
// .eh_frame still find their way). The host's file is only read.
func (r *Result) Write(out string) error {
	cfi, err := removedCFI(r.host, r.Ranges)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := atomicdir.CopyFile(r.host, out); err != nil {
		return fmt.Errorf("copying %s: %w", r.host, err)
	}
	dst, err := os.OpenFile(out, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	var fill []byte
	put := func(b byte, off int64, n int) error {
		if cap(fill) < n {
			fill = make([]byte, n)
		}
		fill = fill[:n]
		for i := range fill {
			fill[i] = b
		}
		_, err := dst.WriteAt(fill, off)
		return err
	}
	for _, f := range r.Ranges {
		if err := put(0xcc, r.offset(f.Start), int(f.End-f.Start)); err != nil {
			dst.Close()
			return fmt.Errorf("writing %s: %w", out, err)
		}
	}
	for _, c := range cfi {
		if err := put(0, c.off, c.n); err != nil {
			dst.Close()
			return fmt.Errorf("writing %s: %w", out, err)
		}
	}
	return dst.Close()
}

// span is a run of n bytes at file offset off.
type span struct {
	off int64
	n   int
}

// removedCFI returns where, in the file host, the call frame instructions
// of the FDEs lie whose code is inside one of the removed ranges (sorted
// by address).
func removedCFI(host string, ranges []Function) ([]span, error) {
	if len(ranges) == 0 {
		return nil, nil
	}
	f, err := elf.Open(host)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", host, err)
	}
	defer f.Close()
	eh := f.Section(".eh_frame")
	if eh == nil || eh.Type != elf.SHT_PROGBITS {
		return nil, nil
	}
	data, err := eh.Data()
	if err != nil {
		return nil, fmt.Errorf("reading %s: .eh_frame: %w", host, err)
	}
	fdes, err := parseEhFrame(data, eh.Addr)
	if err != nil {
		return nil, fmt.Errorf("reading %s: .eh_frame: %w", host, err)
	}
	var out []span
	for _, d := range fdes {
		i := sort.Search(len(ranges), func(i int) bool { return ranges[i].End > d.start })
		if i < len(ranges) && ranges[i].Start <= d.start && d.end <= ranges[i].End && d.cfiEnd > d.cfi {
			out = append(out, span{off: int64(eh.Offset) + int64(d.cfi), n: d.cfiEnd - d.cfi})
		}
	}
	return out, nil
}

// Lookup returns the removed function of r that holds address a.
func (r *Result) Lookup(a uint64) (Function, bool) {
	i := sort.Search(len(r.Ranges), func(i int) bool { return r.Ranges[i].End > a })
	if i < len(r.Ranges) && r.Ranges[i].Start <= a {
		return r.Ranges[i], true
	}
	return Function{}, false
}
