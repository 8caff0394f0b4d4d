package kconfig

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Kconfig is what bespoke knows of a kernel's Kconfig files: every symbol
// with where it is defined, its dependencies, its prompts and what it
// selects. It is a small parser, enough to explain a .config and to say
// why an option could not be set; the kernel's own kconfig resolves.
type Kconfig struct {
	Symbols map[string]*Symbol
	// selectedBy maps a symbol to the definitions that select it.
	selectedBy map[string][]selectRef
	// otherArchs maps a symbol unknown here to the other architectures
	// whose Kconfig defines it (filled only for symbols asked about).
	otherArchs map[string][]string
}

// Symbol is one Kconfig symbol, possibly defined in several places.
type Symbol struct {
	Name string
	Type string // "bool", "tristate", "string", "int", "hex" ("" when untyped)
	Defs []*Def
}

// Def is one `config` or `menuconfig` block.
type Def struct {
	File string // relative to the tree
	Line int
	// Depends is the block's own `depends on` lines joined with &&.
	Depends Expr
	// parents are the enclosing menus, ifs and choices; their conditions
	// are known only once they are parsed to the end, so Deps reads them
	// lazily.
	parents []*block
	// Prompt is true when the block has a prompt; PromptIf is its
	// condition (nil: always).
	Prompt   bool
	PromptIf Expr
	Selects  []Select
	Implies  []Select
	Choice   *block // the choice the symbol is a member of, or nil
}

// Select is a `select` or `imply` line.
type Select struct {
	Symbol string
	If     Expr
}

type selectRef struct {
	From string
	If   Expr
}

// block is a menu, if or choice that conditions the blocks inside it.
type block struct {
	kind string // "menu", "if", "choice"
	cond Expr
}

// Deps is the full dependency of d: its own `depends on` and those of the
// menus, ifs and choices around it.
func (d *Def) Deps() Expr {
	var es []Expr
	for _, p := range d.parents {
		es = append(es, p.cond)
	}
	return and(append(es, d.Depends)...)
}

// ParseKconfig parses the Kconfig tree at dir, starting at dir/Kconfig and
// following `source` lines; arch is the SRCARCH ("x86").
func ParseKconfig(dir, arch string) (*Kconfig, error) {
	p := &kparser{
		dir:  dir,
		vars: map[string]string{"SRCARCH": arch, "ARCH": arch, "HEADER_ARCH": arch, "srctree": dir},
		kc:   &Kconfig{Symbols: map[string]*Symbol{}, selectedBy: map[string][]selectRef{}},
	}
	if err := p.file("Kconfig", false); err != nil {
		return nil, fmt.Errorf("parsing Kconfig: %w", err)
	}
	if len(p.stack) != 0 {
		return nil, fmt.Errorf("parsing Kconfig: %d menu/if/choice blocks not closed", len(p.stack))
	}
	for name, s := range p.kc.Symbols {
		for _, d := range s.Defs {
			for _, sel := range d.Selects {
				p.kc.selectedBy[sel.Symbol] = append(p.kc.selectedBy[sel.Symbol], selectRef{From: name, If: sel.If})
			}
		}
	}
	for _, refs := range p.kc.selectedBy {
		sort.Slice(refs, func(i, j int) bool { return refs[i].From < refs[j].From })
	}
	return p.kc, nil
}

type kparser struct {
	dir   string
	vars  map[string]string
	kc    *Kconfig
	stack []*block
	depth int
}

var typeWords = map[string]bool{"bool": true, "tristate": true, "string": true, "int": true, "hex": true}

func (p *kparser) expand(s string) string {
	for k, v := range p.vars {
		s = strings.ReplaceAll(s, "$("+k+")", v)
	}
	return s
}

// file parses one Kconfig file, relative to the tree (or to cur for rsource).
func (p *kparser) file(rel string, optional bool) error {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > 64 {
		return fmt.Errorf("%s: source nesting too deep", rel)
	}
	f, err := os.Open(filepath.Join(p.dir, rel))
	if err != nil {
		if optional && os.IsNotExist(err) {
			return nil
		}
		return err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}

	var cur *Def      // the config block being read, nil outside one
	var curBlk *block // the menu/choice/comment whose attributes are being read
	var curSym *Symbol
	var choice *block
	for i := 0; i < len(lines); i++ {
		n := i + 1
		line := lines[i]
		for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, "\\") + " " + lines[i]
		}
		text := strings.TrimSpace(stripComment(line))
		if text == "" {
			continue
		}
		word, rest, _ := strings.Cut(text, " ")
		if w, r, ok := strings.Cut(text, "\t"); ok && len(w) < len(word) {
			word, rest = w, r
		}
		rest = strings.TrimSpace(rest)
		errf := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", rel, n, fmt.Sprintf(format, args...))
		}
		switch word {
		case "config", "menuconfig":
			name := rest
			s := p.kc.Symbols[name]
			if s == nil {
				s = &Symbol{Name: name}
				p.kc.Symbols[name] = s
			}
			cur = &Def{File: rel, Line: n, parents: append([]*block(nil), p.stack...), Choice: choice}
			s.Defs = append(s.Defs, cur)
			curSym, curBlk = s, nil
			continue
		case "choice":
			choice = &block{kind: "choice"}
			p.stack = append(p.stack, choice)
			cur, curSym, curBlk = nil, nil, choice
			continue
		case "endchoice", "endmenu", "endif":
			kind := map[string]string{"endchoice": "choice", "endmenu": "menu", "endif": "if"}[word]
			if len(p.stack) == 0 || p.stack[len(p.stack)-1].kind != kind {
				return errf("%s without %s", word, kind)
			}
			p.stack = p.stack[:len(p.stack)-1]
			if kind == "choice" {
				choice = nil
			}
			cur, curSym, curBlk = nil, nil, nil
			continue
		case "menu":
			b := &block{kind: "menu"}
			p.stack = append(p.stack, b)
			cur, curSym, curBlk = nil, nil, b
			continue
		case "if":
			e, err := parseExpr(rest)
			if err != nil {
				return errf("%v", err)
			}
			p.stack = append(p.stack, &block{kind: "if", cond: e})
			cur, curSym, curBlk = nil, nil, nil
			continue
		case "comment":
			cur, curSym, curBlk = nil, nil, &block{kind: "comment"}
			continue
		case "mainmenu":
			continue
		case "source", "osource", "rsource", "orsource":
			path := p.expand(strings.Trim(rest, "\""))
			if strings.HasPrefix(word, "r") || strings.HasPrefix(word, "or") {
				path = filepath.Join(filepath.Dir(rel), path)
			}
			path = strings.TrimPrefix(path, p.dir+"/")
			if err := p.file(path, strings.HasPrefix(word, "o")); err != nil {
				return err
			}
			cur, curSym, curBlk = nil, nil, nil
			continue
		case "help", "---help---":
			i = skipHelp(lines, i)
			continue
		}
		// Macro definitions (FOO := ..., FOO = ..., FOO += ...) at top level.
		if strings.HasPrefix(word, "$(") || strings.HasPrefix(rest, ":=") || strings.HasPrefix(rest, "=") || strings.HasPrefix(rest, "+=") || strings.Contains(word, ":=") {
			continue
		}
		// Attributes.
		switch {
		case word == "depends":
			e, err := parseExpr(strings.TrimSpace(strings.TrimPrefix(rest, "on")))
			if err != nil {
				return errf("%v", err)
			}
			if cur != nil {
				cur.Depends = and(cur.Depends, e)
			} else if curBlk != nil {
				curBlk.cond = and(curBlk.cond, e)
			}
		case typeWords[word] || word == "prompt" || word == "def_bool" || word == "def_tristate":
			if curSym != nil {
				switch word {
				case "def_bool":
					curSym.Type = "bool"
				case "def_tristate":
					curSym.Type = "tristate"
				case "prompt":
				default:
					curSym.Type = word
				}
			}
			if cur == nil || strings.HasPrefix(word, "def_") || rest == "" {
				continue
			}
			_, cond, err := promptCond(rest)
			if err != nil {
				return errf("%v", err)
			}
			cur.Prompt, cur.PromptIf = true, cond
		case word == "select" || word == "imply":
			if cur == nil {
				continue
			}
			sym, cond, _ := strings.Cut(rest, " if ")
			s := Select{Symbol: strings.TrimSpace(sym)}
			if cond != "" {
				e, err := parseExpr(cond)
				if err != nil {
					return errf("%v", err)
				}
				s.If = e
			}
			if word == "select" {
				cur.Selects = append(cur.Selects, s)
			} else {
				cur.Implies = append(cur.Implies, s)
			}
		case word == "default", word == "range", word == "option", word == "modules",
			word == "optional", word == "visible", word == "transitional":
			// Not needed to explain or check a .config.
		default:
			return errf("unknown Kconfig keyword %q", word)
		}
	}
	return nil
}

// promptCond splits `"text" if COND` into the text and the condition.
func promptCond(s string) (string, Expr, error) {
	if s == "" || (s[0] != '"' && s[0] != '\'') {
		return s, nil, nil
	}
	q := s[0]
	j := 1
	for j < len(s) && s[j] != q {
		if s[j] == '\\' {
			j++
		}
		j++
	}
	if j >= len(s) {
		return "", nil, fmt.Errorf("unterminated prompt %s", s)
	}
	text := s[1:j]
	rest := strings.TrimSpace(s[j+1:])
	if rest == "" {
		return text, nil, nil
	}
	c, ok := strings.CutPrefix(rest, "if")
	if !ok {
		return "", nil, fmt.Errorf("unexpected %q after prompt", rest)
	}
	e, err := parseExpr(strings.TrimSpace(c))
	return text, e, err
}

// stripComment removes a # comment outside quotes.
func stripComment(s string) string {
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == '\\' {
				i++
			} else if c == q {
				q = 0
			}
		case c == '"' || c == '\'':
			q = c
		case c == '#':
			return s[:i]
		}
	}
	return s
}

// skipHelp returns the index of the last line of the help text that
// starts after line i: the lines indented at least as much as its first
// line, and blank lines.
func skipHelp(lines []string, i int) int {
	indent := -1
	j := i + 1
	for ; j < len(lines); j++ {
		l := lines[j]
		if strings.TrimSpace(l) == "" {
			continue
		}
		w := indentWidth(l)
		if indent < 0 {
			indent = w
			if w == 0 {
				return j - 1
			}
		}
		if w < indent {
			break
		}
	}
	// Trailing blank lines belong to nobody; step back over them.
	for j-1 > i && strings.TrimSpace(lines[j-1]) == "" {
		j--
	}
	return j - 1
}

func indentWidth(s string) int {
	w := 0
	for _, c := range s {
		switch c {
		case ' ':
			w++
		case '\t':
			w = (w/8 + 1) * 8
		default:
			return w
		}
	}
	return w
}

// settable reports whether some definition of s has a prompt, i.e. a
// user (or a fragment) can set it.
func (s *Symbol) settable() bool {
	for _, d := range s.Defs {
		if d.Prompt {
			return true
		}
	}
	return false
}
