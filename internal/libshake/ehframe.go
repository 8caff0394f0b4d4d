package libshake

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// fde is one frame description entry of .eh_frame: the code range
// [start, end) it describes, and where its unwinding information points:
// the personality routine of its CIE (0: none, or reached through a data
// slot, which has a relocation of its own) and its LSDA (0: none).
type fde struct {
	start, end  uint64
	personality uint64
	lsda        uint64
	// cfi and cfiEnd delimit its call frame instructions in the section.
	cfi, cfiEnd int
}

// DWARF exception-handling pointer encodings (the LSB's DW_EH_PE_*).
const (
	peAbsptr   = 0x00
	peUleb128  = 0x01
	peUdata2   = 0x02
	peUdata4   = 0x03
	peUdata8   = 0x04
	peSleb128  = 0x09
	peSdata2   = 0x0a
	peSdata4   = 0x0b
	peSdata8   = 0x0c
	pePcrel    = 0x10
	peDatarel  = 0x30
	peIndirect = 0x80
	peOmit     = 0xff
)

var errTruncated = errors.New("truncated")

// reader reads the fields of .eh_frame or .gcc_except_table, whose first
// byte is at address base.
type reader struct {
	data []byte
	off  int
	base uint64
}

func (r *reader) u8() (byte, error) {
	if r.off >= len(r.data) {
		return 0, errTruncated
	}
	b := r.data[r.off]
	r.off++
	return b, nil
}

func (r *reader) fixed(n int) (uint64, error) {
	if r.off+n > len(r.data) || r.off+n < r.off {
		return 0, errTruncated
	}
	b := r.data[r.off : r.off+n]
	r.off += n
	switch n {
	case 2:
		return uint64(binary.LittleEndian.Uint16(b)), nil
	case 4:
		return uint64(binary.LittleEndian.Uint32(b)), nil
	default:
		return binary.LittleEndian.Uint64(b), nil
	}
}

func (r *reader) uleb() (uint64, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		b, err := r.u8()
		if err != nil {
			return 0, err
		}
		if shift < 64 {
			v |= uint64(b&0x7f) << shift
		}
		if b&0x80 == 0 {
			return v, nil
		}
	}
}

func (r *reader) sleb() (int64, error) {
	var v int64
	var shift uint
	for {
		b, err := r.u8()
		if err != nil {
			return 0, err
		}
		if shift < 64 {
			v |= int64(b&0x7f) << shift
		}
		shift += 7
		if b&0x80 == 0 {
			if shift < 64 && b&0x40 != 0 {
				v |= -1 << shift
			}
			return v, nil
		}
	}
}

// pointer reads a value in encoding enc. It applies pcrel (relative to the
// field's own address) but not indirect: the caller decides what a slot's
// address means. relative is false when the encoding's application is not
// absolute or pcrel (datarel, textrel, funcrel), which this reader cannot
// resolve.
func (r *reader) pointer(enc byte) (v uint64, relative bool, err error) {
	at := r.base + uint64(r.off)
	switch enc & 0x0f {
	case peAbsptr, peUdata8, peSdata8:
		v, err = r.fixed(8)
	case peUleb128:
		v, err = r.uleb()
	case peSleb128:
		var s int64
		s, err = r.sleb()
		v = uint64(s)
	case peUdata2:
		v, err = r.fixed(2)
	case peSdata2:
		v, err = r.fixed(2)
		v = uint64(int64(int16(v)))
	case peUdata4:
		v, err = r.fixed(4)
	case peSdata4:
		v, err = r.fixed(4)
		v = uint64(int64(int32(v)))
	default:
		return 0, false, fmt.Errorf("unknown pointer encoding %#x", enc)
	}
	if err != nil {
		return 0, false, err
	}
	switch enc & 0x70 {
	case 0:
	case pePcrel:
		v += at
	default:
		return v, false, nil
	}
	return v, true, nil
}

// cie is what an FDE needs from its common information entry.
type cie struct {
	fdeEnc      byte
	lsdaEnc     byte
	personality uint64
	augData     bool // augmentation "z...": FDEs carry augmentation data
}

// parseEhFrame returns the FDEs of an .eh_frame section whose first byte
// is at address addr.
func parseEhFrame(data []byte, addr uint64) ([]fde, error) {
	cies := map[int]*cie{}
	var out []fde
	for off := 0; off < len(data); {
		r := &reader{data: data, off: off, base: addr}
		length, err := r.fixed(4)
		if err != nil {
			return nil, fmt.Errorf("entry at %#x: %w", off, err)
		}
		if length == 0 { // the terminator
			break
		}
		if length == 0xffffffff {
			if length, err = r.fixed(8); err != nil {
				return nil, fmt.Errorf("entry at %#x: %w", off, err)
			}
		}
		body := r.off
		end := body + int(length)
		if length > uint64(len(data)) || end > len(data) || end < body {
			return nil, fmt.Errorf("entry at %#x: length %d runs past the section's end", off, length)
		}
		r.data = data[:end]
		idAt := r.off
		id, err := r.fixed(4)
		if err != nil {
			return nil, fmt.Errorf("entry at %#x: %w", off, err)
		}
		if id == 0 {
			c, err := parseCIE(r)
			if err != nil {
				return nil, fmt.Errorf("CIE at %#x: %w", off, err)
			}
			cies[off] = c
		} else {
			c := cies[idAt-int(id)]
			if c == nil {
				return nil, fmt.Errorf("FDE at %#x: no CIE at %#x", off, idAt-int(id))
			}
			f, err := parseFDE(r, c)
			if err != nil {
				return nil, fmt.Errorf("FDE at %#x: %w", off, err)
			}
			if f.end > f.start {
				out = append(out, f)
			}
		}
		off = end
	}
	return out, nil
}

func parseCIE(r *reader) (*cie, error) {
	version, err := r.u8()
	if err != nil {
		return nil, err
	}
	if version != 1 && version != 3 {
		return nil, fmt.Errorf("version %d", version)
	}
	var aug []byte
	for {
		b, err := r.u8()
		if err != nil {
			return nil, err
		}
		if b == 0 {
			break
		}
		aug = append(aug, b)
	}
	if _, err := r.uleb(); err != nil { // code alignment
		return nil, err
	}
	if _, err := r.sleb(); err != nil { // data alignment
		return nil, err
	}
	if version == 1 {
		_, err = r.u8()
	} else {
		_, err = r.uleb()
	}
	if err != nil { // return address register
		return nil, err
	}
	c := &cie{fdeEnc: peAbsptr, lsdaEnc: peOmit}
	if len(aug) == 0 {
		return c, nil
	}
	if aug[0] != 'z' {
		return nil, fmt.Errorf("augmentation %q", aug)
	}
	c.augData = true
	if _, err := r.uleb(); err != nil {
		return nil, err
	}
	for _, a := range aug[1:] {
		switch a {
		case 'R':
			if c.fdeEnc, err = r.u8(); err != nil {
				return nil, err
			}
		case 'L':
			if c.lsdaEnc, err = r.u8(); err != nil {
				return nil, err
			}
		case 'P':
			enc, err := r.u8()
			if err != nil {
				return nil, err
			}
			p, ok, err := r.pointer(enc)
			if err != nil {
				return nil, err
			}
			// An indirect personality is a data slot with a relocation,
			// which the object's relocations already make a root.
			if ok && enc&peIndirect == 0 {
				c.personality = p
			}
		case 'S', 'B', 'G':
		default:
			return nil, fmt.Errorf("augmentation %q", aug)
		}
	}
	return c, nil
}

func parseFDE(r *reader, c *cie) (fde, error) {
	start, ok, err := r.pointer(c.fdeEnc)
	if err != nil {
		return fde{}, err
	}
	if !ok {
		return fde{}, fmt.Errorf("pointer encoding %#x is not absolute or pc-relative", c.fdeEnc)
	}
	// The range has the encoding's format, without its application.
	size, _, err := r.pointer(c.fdeEnc & 0x0f)
	if err != nil {
		return fde{}, err
	}
	f := fde{start: start, end: start + size, personality: c.personality}
	if c.augData {
		n, err := r.uleb()
		if err != nil {
			return fde{}, err
		}
		if n > uint64(len(r.data)-r.off) {
			return fde{}, fmt.Errorf("augmentation data runs past the entry's end")
		}
		augEnd := r.off + int(n)
		if c.lsdaEnc != peOmit && n > 0 {
			p, ok, err := r.pointer(c.lsdaEnc)
			if err != nil {
				return fde{}, err
			}
			switch {
			case ok && c.lsdaEnc&peIndirect == 0:
				f.lsda = p
			case p != 0:
				// Landing pads this reader cannot find: an unsound removal
				// would follow.
				return fde{}, fmt.Errorf("LSDA pointer encoding %#x", c.lsdaEnc)
			}
		}
		r.off = augEnd
	}
	f.cfi, f.cfiEnd = r.off, len(r.data)
	if f.cfi > f.cfiEnd {
		return fde{}, fmt.Errorf("augmentation data runs past the entry's end")
	}
	return f, nil
}

// landingPads returns the landing pads of the LSDA (a .gcc_except_table
// entry) at address lsda, for the function that starts at fnStart. table
// is the section holding it, whose first byte is at address base.
func landingPads(table []byte, base, lsda, fnStart uint64) ([]uint64, error) {
	if lsda < base || lsda-base >= uint64(len(table)) {
		return nil, fmt.Errorf("LSDA %#x is outside .gcc_except_table", lsda)
	}
	r := &reader{data: table, off: int(lsda - base), base: base}
	lpStart := fnStart
	enc, err := r.u8()
	if err != nil {
		return nil, err
	}
	if enc != peOmit {
		p, ok, err := r.pointer(enc)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("LPStart encoding %#x", enc)
		}
		lpStart = p
	}
	ttEnc, err := r.u8()
	if err != nil {
		return nil, err
	}
	if ttEnc != peOmit {
		if _, err := r.uleb(); err != nil {
			return nil, err
		}
	}
	csEnc, err := r.u8()
	if err != nil {
		return nil, err
	}
	n, err := r.uleb()
	if err != nil {
		return nil, err
	}
	end := r.off + int(n)
	if n > uint64(len(table)) || end > len(table) {
		return nil, errTruncated
	}
	var pads []uint64
	for r.off < end {
		// start, length and landing pad are offsets: their format only.
		for i := 0; i < 2; i++ {
			if _, _, err := r.pointer(csEnc & 0x0f); err != nil {
				return nil, err
			}
		}
		lp, _, err := r.pointer(csEnc & 0x0f)
		if err != nil {
			return nil, err
		}
		if _, err := r.uleb(); err != nil { // action
			return nil, err
		}
		if lp != 0 {
			pads = append(pads, lpStart+lp)
		}
	}
	return pads, nil
}
