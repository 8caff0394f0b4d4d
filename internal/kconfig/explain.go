package kconfig

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// Explanation says why one symbol is on in a generated .config.
type Explanation struct {
	Symbol string // without CONFIG_
	Value  string // as in the .config
	Kind   string // KindBase, KindManifest, KindUser, KindOpt, KindDependency, KindSelected
	Part   string // for KindBase: the fragment
	Reason string // the fragment's comment, the manifest facts, the flag
	By     string // for KindDependency and KindSelected: the symbol that needs or selects it
	Also   []string
}

// String is one line of `bespoke config --explain`.
func (e Explanation) String() string {
	s := Request{Kind: e.Kind, Part: e.Part, Reason: e.Reason, By: e.By}.label()
	for _, a := range e.Also {
		s += "; also " + a
	}
	return s
}

// label says where a request comes from, as --explain prints it.
func (e Request) label() string {
	switch e.Kind {
	case KindBase:
		return fmt.Sprintf("base (%s): %s", e.Part, e.Reason)
	case KindManifest:
		return "manifest: " + e.Reason
	case KindUser, KindOpt:
		return e.Kind + ": " + e.Reason
	case KindDependency:
		return "dependency of " + e.By
	case KindSelected:
		return "selected by " + e.By
	}
	return e.Reason
}

var kindOrder = map[string]int{KindBase: 0, KindOpt: 1, KindManifest: 2, KindUser: 3, KindDependency: 4, KindSelected: 5}

// explain returns why each symbol that is on in cfg is there: the
// requests kconfig honoured, then, transitively, the symbols those select.
// Symbols on only by a Kconfig default are left out; defaults counts them.
func explain(kc *Kconfig, cfg *Config, reqs []Request) (out []Explanation, defaults int) {
	explained := map[string]bool{}
	for _, r := range reqs {
		v := cfg.Value(r.Symbol)
		if v == "n" || v != r.Value {
			continue
		}
		explained[r.Symbol] = true
		out = append(out, Explanation{Symbol: r.Symbol, Value: v, Kind: r.Kind, Part: r.Part, Reason: r.Reason, By: r.By, Also: r.Also})
	}
	// Selected symbols, to a fixpoint: a symbol is explained by the first
	// (alphabetically) explained, enabled symbol that selects it.
	for changed := true; changed; {
		changed = false
		for _, sym := range cfg.Symbols() {
			if explained[sym] || !cfg.Enabled(sym) {
				continue
			}
			for _, ref := range kc.selectedBy[sym] {
				if explained[ref.From] && cfg.Enabled(ref.From) && eval(ref.If, cfg.Value) != 0 {
					explained[sym] = true
					out = append(out, Explanation{Symbol: sym, Value: "y", Kind: KindSelected, By: ref.From})
					changed = true
					break
				}
			}
		}
	}
	for _, sym := range cfg.Symbols() {
		if cfg.Enabled(sym) && !explained[sym] {
			defaults++
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if a, b := kindOrder[out[i].Kind], kindOrder[out[j].Kind]; a != b {
			return a < b
		}
		if out[i].Kind == KindBase || out[i].Kind == KindDependency {
			return false // keep the fragment's and the dependency walk's order
		}
		return out[i].Symbol < out[j].Symbol
	})
	return out, defaults
}

// WriteExplanation writes the --explain text: one line per explained
// symbol, then the number of symbols on by Kconfig default.
func WriteExplanation(w io.Writer, ex []Explanation, defaults int) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, e := range ex {
		fmt.Fprintf(tw, "CONFIG_%s=%s\t%s\n", e.Symbol, e.Value, oneLine(e.String()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "(%d more symbols are on by Kconfig default)\n", defaults)
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
