package libshake

import (
	"os"
	"path/filepath"
	"strings"
)

// realPath resolves p's symlinks (p itself when it cannot).
func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// profile makes o's live functions those that ran (file offsets of their
// entries), those Keep named, and those entered where no breakpoint sees
// it from a function kept.
func (s *shaker) profile(o *object, ran []uint64) {
	keep := map[int]bool{}
	var work []int
	add := func(i int) {
		if i >= 0 && !o.funcs[i].gap && !keep[i] {
			keep[i] = true
			work = append(work, i)
		}
	}
	for _, off := range ran {
		if off < o.text.Offset || off >= o.text.Offset+o.text.Size {
			continue
		}
		if i := o.find(off - o.text.Offset + o.text.Addr); i >= 0 && o.funcs[i].start == off-o.text.Offset+o.text.Addr {
			add(i)
		}
	}
	for _, i := range o.kept {
		add(i)
	}
	// Data pointing into the middle of a function (a computed goto's
	// table, a pointer past an FDE that starts early) is an entry no
	// breakpoint sees.
	for _, a := range o.roots {
		if i := o.find(a); i >= 0 && o.funcs[i].start != a {
			add(i)
		}
	}
	// An IFUNC resolver picks an implementation by the CPU: the guest's
	// may differ from the traced host's (QEMU's TCG models other CPUs).
	// Every implementation a resolver names stays.
	for _, r := range o.ifuncs {
		i := o.find(r)
		if i < 0 || o.funcs[i].gap {
			continue
		}
		add(i)
		f := o.funcs[i]
		midEntries(o, f.start, o.code(f), func(t uint64) { add(o.find(t)) })
	}
	for len(work) > 0 {
		i := work[len(work)-1]
		work = work[:len(work)-1]
		f := o.funcs[i]
		midEntries(o, f.start, o.code(f), func(t uint64) {
			if j := o.find(t); j >= 0 && j != i && o.funcs[j].start != t {
				add(j)
			}
		})
		if f.lsda != 0 && o.except != nil {
			pads, err := landingPads(o.exceptData, o.except.Addr, f.lsda, f.start)
			if err == nil {
				for _, p := range pads {
					if j := o.find(p); j >= 0 && o.funcs[j].start != p {
						add(j)
					}
				}
			}
		}
	}
	for i := range o.funcs {
		if !o.funcs[i].gap {
			o.funcs[i].live = keep[i]
		}
	}
}

// midEntries calls visit with every code address a function's code
// references: branch targets, RIP-relative operands, and the entries of
// the jump tables it loads.
func midEntries(o *object, addr uint64, code []byte, visit func(uint64)) {
	lo, hi := o.text.Addr, o.text.Addr+o.text.Size
	// An instruction decode does not know ends the walk: the static pass
	// made such an object whole.
	walk(addr, code, func(next uint64, in inst) {
		switch {
		case in.branch:
			visit(next + uint64(in.rel))
		case in.ripRel:
			t := next + uint64(in.disp)
			if t >= lo && t < hi {
				visit(t)
			}
			if !in.vex && in.m == 0 && in.op == 0x8d {
				o.jumpTable(t, visit)
			}
		}
	})
}

// walk calls visit with each instruction of code, which starts at addr,
// and the address after it, up to the first one decode does not know.
func walk(addr uint64, code []byte, visit func(next uint64, in inst)) {
	for off := 0; off < len(code); {
		in, err := decode(code[off:])
		if err != nil {
			return
		}
		off += in.len
		visit(addr+uint64(off), in)
	}
}

// EntryOffsets returns the file offsets of the entries of the functions
// of the ELF file at path that shaking may remove: what a coverage trace
// puts breakpoints at. It is nil for a file that is no x86-64 ELF object,
// the dynamic loader, or one without .eh_frame.
func EntryOffsets(path string) []uint64 {
	if !IsELF(path) {
		return nil
	}
	o, err := load(Object{Path: path, Host: path, Loader: IsLoader(path)})
	if err != nil {
		return nil
	}
	defer o.close()
	if o.whole != "" {
		return nil
	}
	var out []uint64
	for _, f := range o.funcs {
		if !f.gap {
			out = append(out, f.start-o.text.Addr+o.text.Offset)
		}
	}
	return out
}

// IsLoader reports whether path is glibc's dynamic loader (by its name:
// ld-linux-x86-64.so.2).
func IsLoader(path string) bool {
	return strings.HasPrefix(filepath.Base(path), "ld-linux")
}

// IsELF reports whether the file at path starts with the ELF magic.
func IsELF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var head [4]byte
	_, err = f.ReadAt(head[:], 0)
	return err == nil && string(head[:]) == "\x7fELF"
}
