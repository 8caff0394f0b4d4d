// Package features maps the facts of a manifest (syscalls, socket families,
// filesystem types, /proc and /sys paths, ioctl families) to the Linux 6.12
// x86_64 Kconfig symbols that provide them. The knowledge is data: a table
// whose every row names its source.
//
// Only direct symbols are listed: resolving what they depend on is the job
// of the kernel's own kconfig.
package features

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bespoke-os/bespoke/internal/manifest"
)

// Requirement is one Kconfig symbol a manifest requires, with the facts
// that require it.
type Requirement struct {
	Symbol string   `json:"symbol"` // without the CONFIG_ prefix, e.g. "EPOLL"
	Facts  []string `json:"facts"`  // e.g. "epoll_wait x1234", "socket(AF_INET, SOCK_STREAM, 0) x2"
	// Sources says where each row's knowledge comes from (Kconfig file and
	// help text, syscall table), one per distinct row that matched.
	Sources []string `json:"sources"`
}

// Gap is a fact that no Kconfig symbol can provide: a syscall x86_64 does
// not implement in Linux 6.12, or a socket family, filesystem type or ioctl
// family the table does not know.
type Gap struct {
	Fact   string `json:"fact"`
	Reason string `json:"reason"`
}

// Analysis is what a manifest requires of the kernel.
type Analysis struct {
	Required []Requirement `json:"required"` // sorted by symbol
	Gaps     []Gap         `json:"gaps"`     // sorted by fact
}

// Required returns the symbols m requires, sorted by symbol.
func Required(m *manifest.Manifest) []Requirement {
	return Analyze(m).Required
}

// Gaps returns the facts of m that no symbol provides, sorted by fact.
func Gaps(m *manifest.Manifest) []Gap {
	return Analyze(m).Gaps
}

// fact is one manifest fact with its weight for sorting.
type fact struct {
	text  string
	count int
}

// collector gathers matched rows into requirements.
type collector struct {
	facts   map[string]map[string]int // symbol -> fact text -> count
	sources map[string][]string
	gaps    map[string]string
}

func (c *collector) add(r *Row, f fact) {
	if r.Missing {
		c.gaps[f.text] = "not implemented on x86_64 in Linux 6.12: " + r.Source
		return
	}
	if r.Symbol == "" {
		return // always available
	}
	if c.facts[r.Symbol] == nil {
		c.facts[r.Symbol] = map[string]int{}
	}
	c.facts[r.Symbol][f.text] = f.count
	if !slices.Contains(c.sources[r.Symbol], r.Source) {
		c.sources[r.Symbol] = append(c.sources[r.Symbol], r.Source)
	}
}

// Analyze matches every fact of m against the table.
func Analyze(m *manifest.Manifest) *Analysis {
	c := &collector{facts: map[string]map[string]int{}, sources: map[string][]string{}, gaps: map[string]string{}}
	idx := index()

	// A syscall counts even when it failed (ENOSYS included): the program
	// asked for it.
	for _, s := range m.Syscalls {
		f := fact{fmt.Sprintf("%s x%d", s.Name, s.Count), s.Count}
		if n := s.Errors["ENOSYS"]; n > 0 {
			f.text += fmt.Sprintf(" (ENOSYS x%d)", n)
		}
		for _, r := range idx[Syscall][s.Name] {
			c.add(r, f)
		}
	}
	// A socket counts whatever its result (EAFNOSUPPORT included).
	for _, s := range m.Sockets {
		f := fact{socketFact(s), s.Count}
		rows := matchSocket(idx[Socket], s)
		if len(rows) == 0 {
			c.gaps[f.text] = fmt.Sprintf("socket family %s is not in the feature table (add a row to internal/features)", s.Domain)
		}
		for _, r := range rows {
			c.add(r, f)
		}
	}
	for _, fs := range m.Filesystems {
		f := fact{fmt.Sprintf("fs %s (%s)", fs.Type, strings.Join(fs.Via, ", ")), 0}
		rows := idx[Filesystem][fs.Type]
		if len(rows) == 0 {
			c.gaps[f.text] = fmt.Sprintf("filesystem type %q is not in the feature table (add a row to internal/features)", fs.Type)
		}
		for _, r := range rows {
			c.add(r, f)
		}
	}
	for _, p := range m.ProcSys {
		f := fact{p, 0}
		rows := matchPath(idx[Path], p)
		for _, r := range rows {
			c.add(r, f)
		}
	}
	for _, io := range m.Ioctls {
		f := fact{ioctlFact(io), io.Count}
		rows := matchIoctl(idx[Ioctl], io.Request)
		if len(rows) == 0 {
			c.gaps[f.text] = fmt.Sprintf("ioctl type 0x%02x is not in the feature table (add a row to internal/features)", ioctlType(io.Request))
		}
		for _, r := range rows {
			c.add(r, f)
		}
	}
	for _, p := range m.Prctls {
		f := fact{fmt.Sprintf("%s %s x%d", p.Syscall, p.Option, p.Count), p.Count}
		for _, r := range idx[Prctl][p.Syscall+" "+p.Option] {
			c.add(r, f)
		}
	}

	a := &Analysis{Required: []Requirement{}, Gaps: []Gap{}}
	for sym, fm := range c.facts {
		facts := make([]fact, 0, len(fm))
		for t, n := range fm {
			facts = append(facts, fact{t, n})
		}
		// Most frequent first, then by text.
		slices.SortFunc(facts, func(x, y fact) int {
			if x.count != y.count {
				return y.count - x.count
			}
			return strings.Compare(x.text, y.text)
		})
		req := Requirement{Symbol: sym, Sources: c.sources[sym]}
		for _, f := range facts {
			req.Facts = append(req.Facts, f.text)
		}
		slices.Sort(req.Sources)
		a.Required = append(a.Required, req)
	}
	slices.SortFunc(a.Required, func(x, y Requirement) int { return strings.Compare(x.Symbol, y.Symbol) })
	for f, why := range c.gaps {
		a.Gaps = append(a.Gaps, Gap{Fact: f, Reason: why})
	}
	slices.SortFunc(a.Gaps, func(x, y Gap) int { return strings.Compare(x.Fact, y.Fact) })
	return a
}

// Symbols returns the symbols in reqs, in order.
func Symbols(reqs []Requirement) []string {
	syms := make([]string, len(reqs))
	for i, r := range reqs {
		syms[i] = r.Symbol
	}
	return syms
}
