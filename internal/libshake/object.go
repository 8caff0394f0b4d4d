package libshake

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
)

// fn is one function of an object's .text: an FDE's range, or a gap
// between FDEs (code without unwind information: crtstuff's functions,
// padding), which is never removed but whose references count once
// something reaches it.
type fn struct {
	start, end  uint64
	gap         bool
	live        bool
	personality uint64
	lsda        uint64
}

// object is one ELF file of the closure, as the shaker sees it.
type object struct {
	Object
	file *os.File
	elf  *elf.File
	exec bool // ET_EXEC: absolute addresses without relocations

	text       *elf.Section
	textData   []byte
	plts       []*elf.Section
	except     *elf.Section // .gcc_except_table
	exceptData []byte

	funcs   []fn
	names   map[uint64]string // function start -> symbol name
	exports map[string][]uint64
	gotSym  map[uint64]string // GOT slot -> the symbol it holds
	roots   []uint64          // addresses data points at (relocations, arrays)
	rootSym []string          // names data points at
	strs    []string          // identifier-like strings of its read-only data

	whole string // why it is kept whole ("" when shaken)
	kept  []int  // functions Options.Keep named
	// ifuncs are the IFUNC resolvers (IRELATIVE addends, GNU_IFUNC
	// symbols): each picks one of several implementations by the CPU.
	ifuncs []uint64
}

const (
	rX86_64_64        = 1
	rX86_64_GLOB_DAT  = 6
	rX86_64_JUMP_SLOT = 7
	rX86_64_RELATIVE  = 8
	rX86_64_IRELATIVE = 37
	shtRelr           = 19
	sttGnuIfunc       = 10
)

// load reads what the shaker needs from o.Host. An object that cannot be
// shaken safely comes back with o.whole set, not an error; an error is a
// file that cannot be read at all.
func load(obj Object) (*object, error) {
	o, err := open1(obj)
	if err != nil {
		if o != nil {
			o.close()
		}
		return nil, err
	}
	return o, nil
}

// open1 is load; on an error after the file is open it returns the
// object too, for load to close.
func open1(obj Object) (*object, error) {
	f, err := os.Open(obj.Host)
	if err != nil {
		return nil, err
	}
	o := &object{Object: obj, file: f, names: map[uint64]string{}, exports: map[string][]uint64{}, gotSym: map[uint64]string{}}
	ef, err := elf.NewFile(f)
	if err != nil {
		return o, fmt.Errorf("reading %s: %w", obj.Host, err)
	}
	o.elf = ef
	if ef.Class != elf.ELFCLASS64 || ef.Machine != elf.EM_X86_64 {
		o.whole = fmt.Sprintf("not an x86-64 object (%v, %v)", ef.Class, ef.Machine)
		return o, nil
	}
	if obj.Loader {
		o.whole = "the dynamic loader (it finds libc's functions by name at start-up)"
	}
	o.exec = ef.Type == elf.ET_EXEC
	o.text = ef.Section(".text")
	if o.text == nil || o.text.Type != elf.SHT_PROGBITS || o.text.Flags&elf.SHF_EXECINSTR == 0 {
		o.whole = "no .text section"
		return o, nil
	}
	if o.textData, err = o.text.Data(); err != nil {
		return o, fmt.Errorf("reading %s: .text: %w", obj.Host, err)
	}
	for _, name := range []string{".plt", ".plt.sec", ".plt.got"} {
		if s := ef.Section(name); s != nil && s.Type == elf.SHT_PROGBITS {
			o.plts = append(o.plts, s)
		}
	}
	if s := ef.Section(".gcc_except_table"); s != nil && s.Type == elf.SHT_PROGBITS {
		o.except = s
		if o.exceptData, err = s.Data(); err != nil {
			return o, fmt.Errorf("reading %s: .gcc_except_table: %w", obj.Host, err)
		}
	}
	dyn, err := ef.DynamicSymbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return o, fmt.Errorf("reading %s: .dynsym: %w", obj.Host, err)
	}
	syms, err := ef.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return o, fmt.Errorf("reading %s: .symtab: %w", obj.Host, err)
	}
	for _, s := range append(syms, dyn...) {
		t := elf.ST_TYPE(s.Info)
		if (t == elf.STT_FUNC || t == sttGnuIfunc) && s.Section != elf.SHN_UNDEF && s.Name != "" {
			if _, ok := o.names[s.Value]; !ok {
				o.names[s.Value] = s.Name
			}
		}
		if t == sttGnuIfunc && s.Section != elf.SHN_UNDEF {
			o.ifuncs = append(o.ifuncs, s.Value)
		}
	}
	for _, s := range dyn {
		b := elf.ST_BIND(s.Info)
		if s.Section == elf.SHN_UNDEF || s.Name == "" || (b != elf.STB_GLOBAL && b != elf.STB_WEAK) {
			continue
		}
		if t := elf.ST_TYPE(s.Info); t == elf.STT_FUNC || t == sttGnuIfunc {
			o.exports[s.Name] = append(o.exports[s.Name], s.Value)
		}
	}
	if err := o.readRelocs(dyn); err != nil {
		return o, fmt.Errorf("reading %s: %w", obj.Host, err)
	}
	if err := o.readArrays(); err != nil {
		return o, fmt.Errorf("reading %s: %w", obj.Host, err)
	}
	o.readStrings()
	eh := ef.Section(".eh_frame")
	if eh == nil || eh.Type != elf.SHT_PROGBITS {
		o.setWhole("no .eh_frame: its functions' boundaries are unknown")
		return o, nil
	}
	ehData, err := eh.Data()
	if err != nil {
		return o, fmt.Errorf("reading %s: .eh_frame: %w", obj.Host, err)
	}
	fdes, err := parseEhFrame(ehData, eh.Addr)
	if err != nil {
		o.setWhole(fmt.Sprintf(".eh_frame cannot be read: %v", err))
		return o, nil
	}
	o.funcs = functions(fdes, o.text.Addr, o.text.Addr+o.text.Size)
	return o, nil
}

func (o *object) setWhole(why string) {
	if o.whole == "" {
		o.whole = why
	}
}

func (o *object) close() { o.file.Close() }

// functions turns the FDEs inside [lo, hi) into a sorted list of
// functions covering all of it: overlapping FDEs become one function, and
// the bytes between them gap functions.
func functions(fdes []fde, lo, hi uint64) []fn {
	var in []fde
	for _, f := range fdes {
		if f.start >= lo && f.end <= hi {
			in = append(in, f)
		}
	}
	sort.Slice(in, func(i, j int) bool { return in[i].start < in[j].start })
	var out []fn
	at := lo
	for _, f := range in {
		if n := len(out); n > 0 && !out[n-1].gap && f.start < out[n-1].end {
			// Overlapping FDEs: one function, kept or removed as one.
			out[n-1].end = max(out[n-1].end, f.end)
			at = out[n-1].end
			continue
		}
		if f.start > at {
			out = append(out, fn{start: at, end: f.start, gap: true})
		}
		out = append(out, fn{start: f.start, end: f.end, personality: f.personality, lsda: f.lsda})
		at = f.end
	}
	if at < hi {
		out = append(out, fn{start: at, end: hi, gap: true})
	}
	return out
}

// code returns f's bytes in .text.
func (o *object) code(f fn) []byte {
	return o.textData[f.start-o.text.Addr : f.end-o.text.Addr]
}

// find returns the index of the function holding addr, or -1.
func (o *object) find(addr uint64) int {
	i := sort.Search(len(o.funcs), func(i int) bool { return o.funcs[i].end > addr })
	if i < len(o.funcs) && o.funcs[i].start <= addr {
		return i
	}
	return -1
}

// readRelocs records the dynamic relocations: GOT slots by symbol, and
// the addresses and names data points at, which are roots.
func (o *object) readRelocs(dyn []elf.Symbol) error {
	got := o.elf.Section(".got")
	inGOT := func(a uint64) bool {
		if got != nil && a >= got.Addr && a < got.Addr+got.Size {
			return true
		}
		gp := o.elf.Section(".got.plt")
		return gp != nil && a >= gp.Addr && a < gp.Addr+gp.Size
	}
	for _, s := range o.elf.Sections {
		switch s.Type {
		case elf.SHT_RELA:
			if s.Flags&elf.SHF_ALLOC == 0 {
				continue // a relocatable's or a debug file's, not the loader's
			}
			data, err := s.Data()
			if err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			for i := 0; i+24 <= len(data); i += 24 {
				off := binary.LittleEndian.Uint64(data[i:])
				info := binary.LittleEndian.Uint64(data[i+8:])
				addend := binary.LittleEndian.Uint64(data[i+16:])
				typ, sym := uint32(info), int(info>>32)
				name := ""
				if sym > 0 && sym <= len(dyn) {
					name = dyn[sym-1].Name
				}
				switch {
				case typ == rX86_64_RELATIVE || typ == rX86_64_IRELATIVE:
					o.roots = append(o.roots, addend)
					if typ == rX86_64_IRELATIVE {
						o.ifuncs = append(o.ifuncs, addend)
					}
				case (typ == rX86_64_JUMP_SLOT || typ == rX86_64_GLOB_DAT || typ == rX86_64_64) && inGOT(off) && name != "":
					o.gotSym[off] = name
				case name != "":
					// A symbol's address stored in data (vtables, tables of
					// function pointers): the symbol is a root, wherever it
					// resolves.
					o.rootSym = append(o.rootSym, name)
				}
			}
		case shtRelr:
			data, err := s.Data()
			if err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			var base uint64
			for i := 0; i+8 <= len(data); i += 8 {
				e := binary.LittleEndian.Uint64(data[i:])
				if e&1 == 0 {
					o.rootAt(e)
					base = e + 8
					continue
				}
				for bit := uint64(1); bit < 64; bit++ {
					if e>>bit&1 != 0 {
						o.rootAt(base + (bit-1)*8)
					}
				}
				base += 63 * 8
			}
		}
	}
	return nil
}

// rootAt makes the address stored at addr (a RELR relocation's implicit
// addend) a root.
func (o *object) rootAt(addr uint64) {
	if v, ok := o.word(addr); ok {
		o.roots = append(o.roots, v)
	}
}

// word reads the 8 bytes at address addr of the file's image.
func (o *object) word(addr uint64) (uint64, bool) {
	for _, p := range o.elf.Progs {
		if p.Type == elf.PT_LOAD && addr >= p.Vaddr && addr+8 <= p.Vaddr+p.Filesz {
			var b [8]byte
			if _, err := p.ReadAt(b[:], int64(addr-p.Vaddr)); err != nil {
				return 0, false
			}
			return binary.LittleEndian.Uint64(b[:]), true
		}
	}
	return 0, false
}

// readArrays makes roots of the initialisation and finalisation functions:
// DT_INIT, DT_FINI, the arrays' entries (as stored: a position-independent
// object's are 0 with a relocation, already a root), and the entry point.
// An ET_EXEC's data holds absolute addresses without relocations: every
// word of its data that falls in .text is a root.
func (o *object) readArrays() error {
	o.roots = append(o.roots, o.elf.Entry)
	for _, tag := range []elf.DynTag{elf.DT_INIT, elf.DT_FINI} {
		if v, err := o.elf.DynValue(tag); err == nil {
			o.roots = append(o.roots, v...)
		}
	}
	for _, s := range o.elf.Sections {
		array := s.Type == elf.SHT_INIT_ARRAY || s.Type == elf.SHT_FINI_ARRAY || s.Type == elf.SHT_PREINIT_ARRAY
		data := o.exec && s.Flags&elf.SHF_ALLOC != 0 && s.Flags&elf.SHF_EXECINSTR == 0 && s.Type == elf.SHT_PROGBITS
		if !array && !data {
			continue
		}
		b, err := s.Data()
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		for i := 0; i+8 <= len(b); i += 8 {
			if v := binary.LittleEndian.Uint64(b[i:]); v >= o.text.Addr && v < o.text.Addr+o.text.Size {
				o.roots = append(o.roots, v)
			}
		}
	}
	return nil
}

// readStrings collects the identifier-like strings of the object's
// read-only data: a name passed to dlsym is one of them.
func (o *object) readStrings() {
	for _, s := range o.elf.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_ALLOC == 0 || s.Flags&(elf.SHF_EXECINSTR|elf.SHF_WRITE) != 0 {
			continue
		}
		if s.Name == ".eh_frame" || s.Name == ".eh_frame_hdr" || s.Name == ".gcc_except_table" {
			continue
		}
		b, err := s.Data()
		if err != nil {
			continue
		}
		start := 0
		for i, c := range b {
			if c != 0 {
				if !identByte(c) {
					start = i + 1
				}
				continue
			}
			if i-start >= 2 {
				o.strs = append(o.strs, string(b[start:i]))
			}
			start = i + 1
		}
	}
	slices.Sort(o.strs)
	o.strs = slices.Compact(o.strs)
}

func identByte(c byte) bool {
	return c == '_' || c == '.' || c == '@' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// name returns the function's symbol name, or fn_ADDR.
func (o *object) name(f fn) string {
	if n, ok := o.names[f.start]; ok {
		return n
	}
	return fmt.Sprintf("fn_%x", f.start)
}
