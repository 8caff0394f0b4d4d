package kconfig

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// ErrUnknownOption means a requested symbol is not defined in the kernel's
// Kconfig for x86_64.
var ErrUnknownOption = errors.New("unknown kernel option")

// ErrUnmet means kconfig could not give a requested symbol its value,
// usually because a dependency is off.
var ErrUnmet = errors.New("kernel option could not be set")

// OptionError is the error for one requested symbol. It wraps
// ErrUnknownOption or ErrUnmet.
type OptionError struct {
	Symbol string
	Req    Request
	Msg    string // the whole message, naming the symbol and the reason
	Err    error  // ErrUnknownOption or ErrUnmet
}

func (e *OptionError) Error() string { return e.Msg }
func (e *OptionError) Unwrap() error { return e.Err }

// origin says where a request came from, for error messages.
func (r Request) origin() string {
	switch r.Kind {
	case KindBase:
		return "from the " + r.Part + " base fragment"
	case KindManifest:
		return "required by the manifest: " + r.Reason
	case KindUser, KindOpt:
		return "asked by " + r.Reason
	case KindDependency:
		return "needed by CONFIG_" + r.By
	}
	return "requested"
}

var symRe = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// userRequest parses one --enable or --disable argument: SYM, CONFIG_SYM,
// SYM=value (string, int and hex options; y and n for bool ones).
func userRequest(arg string, enable bool) (Request, error) {
	flag := "--disable"
	if enable {
		flag = "--enable"
	}
	name, val, hasVal := strings.Cut(strings.TrimSpace(arg), "=")
	name = strings.TrimPrefix(name, "CONFIG_")
	if !symRe.MatchString(name) {
		return Request{}, fmt.Errorf("%s %q: want a Kconfig symbol such as EPOLL or CONFIG_EPOLL", flag, arg)
	}
	switch {
	case !enable && hasVal:
		return Request{}, fmt.Errorf("%s %s: takes a symbol without a value", flag, arg)
	case !enable:
		val = "n"
	case !hasVal:
		val = "y"
	case val == "m":
		return Request{}, fmt.Errorf("--enable %s: modules are not supported (a bespoke image has no module loader): use --enable %s to build it in", arg, name)
	}
	return Request{Symbol: name, Value: val, Kind: KindUser, Reason: flag + " " + arg}, nil
}

// merge keeps one request per symbol, in first-seen order: the last one,
// or the first when they agree on the value (the others go to Also).
func merge(reqs []Request) []Request {
	pos := map[string]int{}
	var out []Request
	for _, r := range reqs {
		i, ok := pos[r.Symbol]
		if !ok {
			pos[r.Symbol] = len(out)
			out = append(out, r)
			continue
		}
		if out[i].Value == r.Value {
			out[i].Also = append(out[i].Also, r.label())
			continue
		}
		out[i] = r
	}
	return out
}

// plan checks the requests against the Kconfig tree (unknown symbols,
// values that do not fit the type) and adds the plain `depends on`
// symbols of every enabled request, transitively, as KindDependency.
func plan(kc *Kconfig, reqs []Request, version string) ([]Request, error) {
	reqs = merge(reqs)
	var errs []error
	for i, r := range reqs {
		s := kc.Symbols[r.Symbol]
		if s == nil {
			errs = append(errs, unknownError(kc, r, version))
			continue
		}
		v, err := normalizeValue(s, r.Value)
		if err != nil {
			errs = append(errs, &OptionError{Symbol: r.Symbol, Req: r, Err: ErrUnmet,
				Msg: fmt.Sprintf("CONFIG_%s (%s): %v", r.Symbol, r.origin(), err)})
			continue
		}
		reqs[i].Value = v
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	asked := map[string]bool{}
	for _, r := range reqs {
		asked[r.Symbol] = true
	}
	var add func(sym string)
	add = func(sym string) {
		s := kc.Symbols[sym]
		if s == nil || len(s.Defs) == 0 {
			return
		}
		d := s.Defs[0]
		terms := conjuncts(d.Deps())
		for _, t := range terms {
			dep := positiveSym(t)
			ds := kc.Symbols[dep]
			if dep == "" || asked[dep] || ds == nil || !ds.settable() || (ds.Type != "bool" && ds.Type != "tristate") {
				continue
			}
			asked[dep] = true
			reqs = append(reqs, Request{Symbol: dep, Value: "y", Kind: KindDependency, By: sym, Reason: "dependency of " + sym})
			add(dep)
		}
	}
	for i := 0; i < len(reqs); i++ { // reqs grows while we walk it
		if reqs[i].Value != "n" && reqs[i].Kind != KindDependency {
			add(reqs[i].Symbol)
		}
	}
	return reqs, nil
}

func normalizeValue(s *Symbol, v string) (string, error) {
	switch s.Type {
	case "bool", "tristate", "":
		if v != "y" && v != "n" {
			return "", fmt.Errorf("is a %s option: want y or n, not %q", orUnknown(s.Type), v)
		}
	case "string":
		if v == "n" {
			return v, nil
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		return strconv.Quote(v), nil
	case "int", "hex":
		if v == "n" {
			return v, nil
		}
		if v == "y" {
			return "", fmt.Errorf("is an %s option: give a value, e.g. --enable %s=16", s.Type, s.Name)
		}
		if _, err := strconv.ParseInt(v, 0, 64); err != nil {
			return "", fmt.Errorf("is an %s option: %q is not a number", s.Type, v)
		}
	}
	return v, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "untyped"
	}
	return s
}

func unknownError(kc *Kconfig, r Request, version string) error {
	msg := fmt.Sprintf("unknown kernel option %s (not in Linux %s Kconfig for x86_64)", r.Symbol, version)
	if archs := kc.otherArchs[r.Symbol]; len(archs) > 0 {
		msg = fmt.Sprintf("unknown kernel option %s (Linux %s defines it only for %s, not x86_64)", r.Symbol, version, strings.Join(archs, ", "))
	}
	if r.Kind != KindUser {
		msg += "; " + r.origin()
	}
	if s := suggest(kc, r.Symbol); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return &OptionError{Symbol: r.Symbol, Req: r, Msg: msg, Err: ErrUnknownOption}
}

// suggest returns up to three known symbols close to name.
func suggest(kc *Kconfig, name string) []string {
	up := strings.ToUpper(name)
	type cand struct {
		sym string
		d   int
	}
	var cands []cand
	for sym := range kc.Symbols {
		d := editDistance(up, sym)
		if strings.HasPrefix(sym, up+"_") || strings.HasSuffix(sym, "_"+up) {
			d = min(d, 1+(len(sym)-len(up))/8)
		}
		if d <= max(1, len(up)/4) {
			cands = append(cands, cand{sym, d})
		}
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].d != cands[j].d {
			return cands[i].d < cands[j].d
		}
		return cands[i].sym < cands[j].sym
	})
	var out []string
	for i := 0; i < len(cands) && i < 3; i++ {
		out = append(out, cands[i].sym)
	}
	return out
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// scanOtherArchs records, for the unknown symbols, which other
// architectures' Kconfig files define them.
func (kc *Kconfig) scanOtherArchs(dir, arch string, syms []string) {
	if kc.otherArchs == nil {
		kc.otherArchs = map[string][]string{}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "arch", "*", "Kconfig*"))
	for _, f := range files {
		a := filepath.Base(filepath.Dir(f))
		if a == arch {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range syms {
			if kc.Symbols[s] != nil || slices.Contains(kc.otherArchs[s], a) {
				continue
			}
			if regexp.MustCompile(`(?m)^\s*(menu)?config\s+` + regexp.QuoteMeta(s) + `\s*$`).Match(data) {
				kc.otherArchs[s] = append(kc.otherArchs[s], a)
			}
		}
	}
	for _, v := range kc.otherArchs {
		sort.Strings(v)
	}
}

// check compares the resolved .config with every request and returns one
// OptionError per request kconfig did not honour.
func check(kc *Kconfig, cfg *Config, reqs []Request) error {
	var errs []error
	for _, r := range reqs {
		got := cfg.Value(r.Symbol)
		if got == r.Value || (r.Value == "n" && got != "y" && got != "m") {
			continue
		}
		var why string
		if r.Value == "n" {
			why = kc.whyOn(cfg, r.Symbol)
		} else {
			why = kc.whyNot(cfg, r.Symbol, r.Value)
		}
		errs = append(errs, &OptionError{Symbol: r.Symbol, Req: r, Err: ErrUnmet,
			Msg: fmt.Sprintf("%s; %s", why, r.origin())})
	}
	return errors.Join(errs...)
}

// whyNot says why sym is not set to want in cfg.
func (kc *Kconfig) whyNot(cfg *Config, sym, want string) string {
	s := kc.Symbols[sym]
	v := valuer(cfg.Value)
	// Unmet dependencies: report the definition with the fewest unmet atoms.
	var best *Def
	var bestAtoms, bestNeeds []string
	for _, d := range s.Defs {
		atoms, needs := unmet(d.Deps(), v)
		if len(atoms) == 0 {
			best = nil
			break
		}
		if best == nil || len(atoms) < len(bestAtoms) {
			best, bestAtoms, bestNeeds = d, atoms, needs
		}
	}
	if best != nil {
		msg := fmt.Sprintf("CONFIG_%s needs %s (depends on %s; %s)", sym, strings.Join(bestNeeds, ", "),
			best.Deps(), strings.Join(bestAtoms, ", "))
		for _, n := range bestNeeds {
			if h := kc.hint(n); h != "" {
				msg += "; " + h
			}
		}
		return msg
	}
	if !s.settable() {
		msg := fmt.Sprintf("CONFIG_%s has no prompt: only a select or a default can set it", sym)
		if by := kc.selectors(sym); len(by) > 0 {
			msg += " (selected by " + strings.Join(by, ", ") + ")"
		}
		return msg
	}
	for _, d := range s.Defs {
		if d.Prompt && eval(d.PromptIf, v) == 0 {
			atoms, _ := unmet(d.PromptIf, v)
			return fmt.Sprintf("CONFIG_%s can be set only if %s (%s)", sym, d.PromptIf, strings.Join(atoms, ", "))
		}
	}
	for _, d := range s.Defs {
		if d.Choice == nil {
			continue
		}
		for name, other := range kc.Symbols {
			for _, od := range other.Defs {
				if od.Choice == d.Choice && name != sym && cfg.Enabled(name) {
					return fmt.Sprintf("CONFIG_%s is in a choice with CONFIG_%s, which is on", sym, name)
				}
			}
		}
	}
	return fmt.Sprintf("kconfig set CONFIG_%s=%s, not %s (see the kconfig output above)", sym, cfg.Value(sym), want)
}

// hint explains a needed symbol that cannot simply be switched on.
func (kc *Kconfig) hint(need string) string {
	if strings.ContainsAny(need, " !=<>") {
		return ""
	}
	s := kc.Symbols[need]
	if s == nil {
		if archs := kc.otherArchs[need]; len(archs) > 0 {
			return need + " exists only on " + strings.Join(archs, ", ")
		}
		return need + " is not an x86_64 option"
	}
	if !s.settable() {
		by := kc.selectors(need)
		if len(by) == 0 {
			return need + " has no prompt and nothing selects it on x86_64"
		}
		return need + " has no prompt: it is on only when selected (by " + strings.Join(firstN(by, 5), ", ") + ")"
	}
	return ""
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("%d more", len(s)-n))
	}
	return s
}

// selectors lists the symbols that select sym.
func (kc *Kconfig) selectors(sym string) []string {
	var out []string
	for _, r := range kc.selectedBy[sym] {
		if !slices.Contains(out, r.From) {
			out = append(out, r.From)
		}
	}
	return out
}

// whyOn says why sym is still on although it was disabled.
func (kc *Kconfig) whyOn(cfg *Config, sym string) string {
	var by []string
	for _, r := range kc.selectedBy[sym] {
		if cfg.Enabled(r.From) && eval(r.If, cfg.Value) != 0 && !slices.Contains(by, r.From) {
			by = append(by, r.From)
		}
	}
	if len(by) > 0 {
		return fmt.Sprintf("CONFIG_%s stays on: selected by %s (disable those too)", sym, strings.Join(by, ", "))
	}
	if s := kc.Symbols[sym]; s != nil && !s.settable() {
		return fmt.Sprintf("CONFIG_%s stays on: it has no prompt, its default turns it on", sym)
	}
	return fmt.Sprintf("CONFIG_%s stays on (kconfig set it to %s)", sym, cfg.Value(sym))
}
