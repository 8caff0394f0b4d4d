package costmodel

import (
	"bufio"
	"cmp"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// FuncCost is what a kernel function executed.
type FuncCost struct {
	Name  string  `json:"name"`
	Insns float64 `json:"insns"` // instructions (per request, where scaled)
}

// Symbols maps kernel addresses to function names, from a vmlinux.
type Symbols struct {
	funcs []elf.Symbol // sorted by address, with a size
}

// ReadSymbols reads the function symbols of vmlinux, or of a System.map
// (a kernel shipped without its vmlinux: Debian's).
func ReadSymbols(vmlinux string) (*Symbols, error) {
	f, err := elf.Open(vmlinux)
	var fe *elf.FormatError
	if errors.As(err, &fe) {
		return readSystemMap(vmlinux)
	}
	if err != nil {
		return nil, fmt.Errorf("cost model: reading kernel symbols: %w", err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("cost model: reading kernel symbols of %s: %w", vmlinux, err)
	}
	s := &Symbols{}
	for _, sym := range syms {
		if elf.ST_TYPE(sym.Info) == elf.STT_FUNC && sym.Size > 0 {
			s.funcs = append(s.funcs, sym)
		}
	}
	slices.SortFunc(s.funcs, func(a, b elf.Symbol) int { return cmp.Compare(a.Value, b.Value) })
	return s, nil
}

// Name returns the function holding addr, or "" when none does.
func (s *Symbols) Name(addr uint64) string {
	i, found := slices.BinarySearchFunc(s.funcs, addr, func(sym elf.Symbol, a uint64) int { return cmp.Compare(sym.Value, a) })
	if !found {
		i--
	}
	if i < 0 || addr >= s.funcs[i].Value+s.funcs[i].Size {
		return ""
	}
	return s.funcs[i].Name
}

// Sum adds the instructions of blocks, divided by per, to sums by
// function. Blocks outside every function (the entry code's labels, say)
// are summed as "?".
func (s *Symbols) Sum(sums map[string]float64, blocks []Block, per float64) {
	for _, b := range blocks {
		name := s.Name(b.Addr)
		if name == "" {
			name = "?"
		}
		sums[name] += float64(b.Insns*b.Count) / per
	}
}

// Top returns the n functions of sums with the most instructions, most
// first.
func Top(sums map[string]float64, n int) []FuncCost {
	out := make([]FuncCost, 0, len(sums))
	for name, v := range sums {
		out = append(out, FuncCost{name, v})
	}
	slices.SortFunc(out, func(a, b FuncCost) int {
		if c := cmp.Compare(b.Insns, a.Insns); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// readSystemMap reads the text symbols of a System.map ("ADDR t NAME"
// lines); each function ends where the next symbol starts.
func readSystemMap(path string) (*Symbols, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cost model: reading kernel symbols: %w", err)
	}
	defer f.Close()
	type entry struct {
		addr uint64
		name string
		text bool
	}
	var es []entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		addr, err := strconv.ParseUint(fields[0], 16, 64)
		if err != nil {
			continue
		}
		es = append(es, entry{addr, fields[2], fields[1] == "t" || fields[1] == "T"})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, fmt.Errorf("cost model: %s is neither an ELF file nor a System.map", path)
	}
	if len(es) == 1 {
		// Debian's: "ffffffffffffffff B The real System.map is in the
		// linux-image-<version>-dbg package".
		return nil, fmt.Errorf("cost model: %s holds no symbols (Debian ships the real one in linux-image-VERSION-dbg, which bespoke does not fetch)", path)
	}
	slices.SortStableFunc(es, func(a, b entry) int { return cmp.Compare(a.addr, b.addr) })
	s := &Symbols{}
	for i, e := range es {
		if !e.text || i+1 == len(es) || es[i+1].addr == e.addr {
			continue
		}
		s.funcs = append(s.funcs, elf.Symbol{Name: e.name, Value: e.addr, Size: es[i+1].addr - e.addr})
	}
	return s, nil
}
