package pgo

//go:generate sh testdata/gen.sh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Tags and constants of the .gcda format (gcc/gcov-io.h).
const (
	gcdaMagic          = 0x67636461 // "gcda"
	tagFunction        = 0x01000000
	tagCounterBase     = 0x01a10000
	tagObjectSummary   = 0xa1000000
	counterKinds       = 32 // upper bound: GCC 12 has 8 kinds, GCC 15 10
	counterArcs        = 0
	functionWords      = 3 // ident, lineno_checksum, cfg_checksum
	objectSummaryWords = 2 // runs, sum_max
)

// ErrNotGCDA is returned by Read for data that does not start with the
// .gcda magic in either byte order.
var ErrNotGCDA = errors.New("not a .gcda file (bad magic)")

// A Profile is the content of one .gcda file: the counters of one
// translation unit.
type Profile struct {
	Version   uint32 // GCC's version word: 'B22*' is GCC 12.2
	Stamp     uint32 // the compilation's stamp (not checked by -fprofile-use)
	Checksum  uint32 // GCC 12 and later; the kernel writes 0
	BigEndian bool   // the file was written on a big-endian machine
	Runs      uint32 // from the object summary; 0 when there is none (kernel)
	SumMax    uint32 // largest arc counter, from the object summary
	Functions []Function
}

// A Function is one function's record and its arc counters. Counters of
// other kinds (value profiles) are checked for length but not kept.
type Function struct {
	Ident        uint32
	LineChecksum uint32
	CfgChecksum  uint32
	Arcs         []uint64
}

// GCCVersion decodes Version as "MAJOR.MINOR", e.g. "12.2".
func (p *Profile) GCCVersion() string {
	major, minor := decodeVersion(p.Version)
	return fmt.Sprintf("%d.%d", major, minor)
}

// decodeVersion undoes gcc/gcov-iov.cc: 'B','2','2','*' is 12.2; before
// GCC 10 the first character was the major version ('A' + major/10 is
// used from GCC 10 on, and 'A' was never a first digit before).
func decodeVersion(v uint32) (major, minor int) {
	c0, c1, c2 := int(v>>24), int(v>>16&0xff), int(v>>8&0xff)
	if c0 >= 'A' {
		major = (c0-'A')*10 + c1 - '0'
	} else {
		major = c0 - '0'
	}
	return major, c2 - '0'
}

// Executed reports whether any arc counter is non-zero: some code of the
// translation unit ran while it was profiled.
func (p *Profile) Executed() bool {
	for _, f := range p.Functions {
		if f.Executed() {
			return true
		}
	}
	return false
}

// Sum is the total of all arc counters.
func (p *Profile) Sum() uint64 {
	var s uint64
	for _, f := range p.Functions {
		for _, c := range f.Arcs {
			s += c
		}
	}
	return s
}

// Executed reports whether any of f's arc counters is non-zero.
func (f *Function) Executed() bool {
	for _, c := range f.Arcs {
		if c != 0 {
			return true
		}
	}
	return false
}

// Read parses a .gcda file.
func Read(r io.Reader) (*Profile, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading gcda: %w", err)
	}
	return parse(data)
}

type decoder struct {
	data  []byte
	off   int
	order binary.ByteOrder
}

func (d *decoder) word() (uint32, error) {
	if len(d.data)-d.off < 4 {
		return 0, fmt.Errorf("offset %d: %w", d.off, io.ErrUnexpectedEOF)
	}
	v := d.order.Uint32(d.data[d.off:])
	d.off += 4
	return v, nil
}

func parse(data []byte) (*Profile, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("reading header: %w", io.ErrUnexpectedEOF)
	}
	d := &decoder{data: data, order: binary.LittleEndian}
	p := &Profile{}
	switch binary.LittleEndian.Uint32(data) {
	case gcdaMagic:
	case 0x61646367:
		d.order = binary.BigEndian
		p.BigEndian = true
	default:
		return nil, ErrNotGCDA
	}
	d.off = 4
	var err error
	if p.Version, err = d.word(); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	if p.Stamp, err = d.word(); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	major, _ := decodeVersion(p.Version)
	unit := 4 // GCC 12 counts record lengths in bytes, earlier in words
	if major >= 12 {
		if p.Checksum, err = d.word(); err != nil {
			return nil, fmt.Errorf("reading header: %w", err)
		}
	} else {
		unit = 1
	}
	var fn *Function
	for d.off < len(data) {
		start := d.off
		tag, err := d.word()
		if err != nil {
			return nil, fmt.Errorf("reading record: %w", err)
		}
		if tag == 0 {
			break // libgcov's end marker
		}
		l, err := d.word()
		if err != nil {
			return nil, fmt.Errorf("reading record %#08x: %w", tag, err)
		}
		length := int64(int32(l))
		zeros := false
		if length < 0 {
			if major < 12 {
				return nil, fmt.Errorf("record %#08x at offset %d: negative length %d", tag, start, length)
			}
			zeros, length = true, -length
		}
		if length%int64(unit) != 0 {
			return nil, fmt.Errorf("record %#08x at offset %d: length %d is not a whole number of words", tag, start, length)
		}
		words := int(length / int64(unit))
		if !zeros && int64(words) > int64(len(data)-d.off)/4 {
			return nil, fmt.Errorf("record %#08x at offset %d: %d words: %w", tag, start, words, io.ErrUnexpectedEOF)
		}
		body := d.off
		switch {
		case tag == tagFunction:
			fn = nil
			if words == 0 {
				break // not emitted in this unit
			}
			if words < functionWords {
				return nil, fmt.Errorf("function record at offset %d: %d words, want %d", start, words, functionWords)
			}
			var f Function
			f.Ident, _ = d.word()
			f.LineChecksum, _ = d.word()
			f.CfgChecksum, _ = d.word()
			p.Functions = append(p.Functions, f)
			fn = &p.Functions[len(p.Functions)-1]
		case isCounterTag(tag):
			if fn == nil {
				return nil, fmt.Errorf("counter record %#08x at offset %d: no function before it", tag, start)
			}
			if words%2 != 0 {
				return nil, fmt.Errorf("counter record %#08x at offset %d: odd length of %d words", tag, start, words)
			}
			if (tag-tagCounterBase)>>17 != counterArcs {
				break
			}
			arcs := make([]uint64, words/2)
			if !zeros {
				for i := range arcs {
					lo, _ := d.word()
					hi, _ := d.word()
					arcs[i] = uint64(hi)<<32 | uint64(lo)
				}
			}
			fn.Arcs = append(fn.Arcs, arcs...)
		case tag == tagObjectSummary && words >= objectSummaryWords:
			p.Runs, _ = d.word()
			p.SumMax, _ = d.word()
		}
		// Unknown records, value-profile counters and the rest of a
		// longer record are skipped by their length.
		if !zeros {
			d.off = body + 4*words
		} else {
			d.off = body
		}
	}
	return p, nil
}

func isCounterTag(tag uint32) bool {
	return tag&0xffff == 0 && tag >= tagCounterBase && (tag-tagCounterBase)>>17 < counterKinds
}

// MaxArc is the largest arc counter of the profile.
func (p *Profile) MaxArc() uint64 {
	var m uint64
	for _, f := range p.Functions {
		for _, c := range f.Arcs {
			m = max(m, c)
		}
	}
	return m
}

// WithSummary returns the .gcda file data with an object summary record
// (runs, and sumMax: the largest arc counter of the whole program, capped
// at 2^32-1 as GCC writes it) after its header, or data itself when it has
// one already.
//
// Linux's gcov (kernel/gcov/gcc_4_7.c) writes no summary, and GCC 12's
// -fprofile-use reads the counters of such a file without using them: with
// no summary it has no profile_info, every count stays "estimated
// locally", and the unit is compiled as without a profile except for what
// -fprofile-use turns on by itself (unrolling, peeling, more inlining).
// libgcov writes runs = 1 for one run and sum_max as the largest arc
// counter over every object of the program, which sets the threshold of
// what GCC calls hot in each unit; bespoke's profile is one run.
func WithSummary(data []byte, sumMax uint64) ([]byte, error) {
	p, err := parse(data)
	if err != nil {
		return nil, err
	}
	if p.Runs != 0 {
		return data, nil
	}
	order := binary.ByteOrder(binary.LittleEndian)
	if p.BigEndian {
		order = binary.BigEndian
	}
	header, length := 12, uint32(objectSummaryWords)
	if major, _ := decodeVersion(p.Version); major >= 12 {
		header, length = 16, objectSummaryWords*4 // lengths in bytes
	}
	rec := make([]byte, 16)
	order.PutUint32(rec[0:], tagObjectSummary)
	order.PutUint32(rec[4:], length)
	order.PutUint32(rec[8:], 1)
	order.PutUint32(rec[12:], uint32(min(sumMax, 1<<32-1)))
	out := make([]byte, 0, len(data)+len(rec))
	out = append(out, data[:header]...)
	out = append(out, rec...)
	return append(out, data[header:]...), nil
}
