package costmodel

import (
	"cmp"
	"debug/elf"
	"fmt"
	"slices"
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

// ReadSymbols reads the function symbols of vmlinux.
func ReadSymbols(vmlinux string) (*Symbols, error) {
	f, err := elf.Open(vmlinux)
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
