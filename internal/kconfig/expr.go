package kconfig

import (
	"fmt"
	"strconv"
	"strings"
)

// Expr is a Kconfig expression: the condition of a `depends on`, `if`,
// `select ... if` or prompt.
type Expr interface {
	String() string
}

type (
	symExpr   struct{ name string } // a symbol or a constant (y, m, n, "text", 42, a $(macro))
	notExpr   struct{ x Expr }
	andExpr   struct{ x, y Expr }
	orExpr    struct{ x, y Expr }
	cmpExpr   struct{ op, l, r string }
	parenExpr struct{ x Expr }
)

func (e symExpr) String() string   { return e.name }
func (e notExpr) String() string   { return "!" + e.x.String() }
func (e andExpr) String() string   { return e.x.String() + " && " + e.y.String() }
func (e orExpr) String() string    { return e.x.String() + " || " + e.y.String() }
func (e cmpExpr) String() string   { return e.l + e.op + e.r }
func (e parenExpr) String() string { return "(" + e.x.String() + ")" }

// and joins conditions with &&, skipping nil ones.
func and(es ...Expr) Expr {
	var out Expr
	for _, e := range es {
		if e == nil {
			continue
		}
		if _, ok := e.(orExpr); ok {
			e = parenExpr{e}
		}
		if out == nil {
			out = e
		} else {
			out = andExpr{out, e}
		}
	}
	return out
}

// parseExpr parses the text of a Kconfig expression.
func parseExpr(s string) (Expr, error) {
	toks, err := lexExpr(s)
	if err != nil {
		return nil, err
	}
	p := &exprParser{toks: toks}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("unexpected %q in expression %q", p.toks[p.pos], s)
	}
	return e, nil
}

func lexExpr(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case strings.HasPrefix(s[i:], "&&"), strings.HasPrefix(s[i:], "||"),
			strings.HasPrefix(s[i:], "!="), strings.HasPrefix(s[i:], "<="), strings.HasPrefix(s[i:], ">="):
			toks = append(toks, s[i:i+2])
			i += 2
		case strings.ContainsRune("!()=<>", rune(c)):
			toks = append(toks, s[i:i+1])
			i++
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string in %q", s)
			}
			toks = append(toks, s[i:j+1])
			i = j + 1
		case c == '$' && i+1 < len(s) && s[i+1] == '(':
			depth, j := 0, i+1
			for ; j < len(s); j++ {
				if s[j] == '(' {
					depth++
				} else if s[j] == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated $( in %q", s)
			}
			toks = append(toks, s[i:j+1])
			i = j + 1
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t!()=<>&|\"'", rune(s[j])) {
				j++
			}
			if j == i {
				return nil, fmt.Errorf("unexpected %q in expression %q", c, s)
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks, nil
}

type exprParser struct {
	toks []string
	pos  int
}

func (p *exprParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *exprParser) or() (Expr, error) {
	x, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.peek() == "||" {
		p.pos++
		y, err := p.and()
		if err != nil {
			return nil, err
		}
		x = orExpr{x, y}
	}
	return x, nil
}

func (p *exprParser) and() (Expr, error) {
	x, err := p.not()
	if err != nil {
		return nil, err
	}
	for p.peek() == "&&" {
		p.pos++
		y, err := p.not()
		if err != nil {
			return nil, err
		}
		x = andExpr{x, y}
	}
	return x, nil
}

func (p *exprParser) not() (Expr, error) {
	if p.peek() == "!" {
		p.pos++
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return notExpr{x}, nil
	}
	return p.primary()
}

func (p *exprParser) primary() (Expr, error) {
	t := p.peek()
	switch t {
	case "":
		return nil, fmt.Errorf("expression ends early")
	case "(":
		p.pos++
		x, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("missing )")
		}
		p.pos++
		return parenExpr{x}, nil
	case ")", "&&", "||", "=", "!=", "<", "<=", ">", ">=":
		return nil, fmt.Errorf("unexpected %q", t)
	}
	p.pos++
	switch op := p.peek(); op {
	case "=", "!=", "<", "<=", ">", ">=":
		p.pos++
		r := p.peek()
		if r == "" {
			return nil, fmt.Errorf("missing operand after %s", op)
		}
		p.pos++
		return cmpExpr{op: op, l: t, r: r}, nil
	}
	return symExpr{t}, nil
}

// A valuer gives the value of a symbol as a .config has it ("n" when unset).
type valuer func(sym string) string

// isConst reports whether a symbol-expression token is a constant rather
// than a symbol name.
func isConst(name string) bool {
	if name == "y" || name == "m" || name == "n" || strings.HasPrefix(name, "$(") ||
		strings.HasPrefix(name, "\"") || strings.HasPrefix(name, "'") {
		return true
	}
	_, err := strconv.ParseInt(name, 0, 64)
	return err == nil
}

func tri(v string) int {
	switch v {
	case "y":
		return 2
	case "m":
		return 1
	}
	return 0
}

// value of a token: constants as themselves (unquoted), symbols from v.
func tokValue(name string, v valuer) string {
	switch {
	case strings.HasPrefix(name, "$("):
		return "y" // toolchain tests: assume met, kconfig decided them
	case strings.HasPrefix(name, "\"") || strings.HasPrefix(name, "'"):
		return name[1 : len(name)-1]
	case isConst(name):
		return name
	}
	return strings.Trim(v(name), "\"")
}

// eval returns the tristate value of e: 0 (n), 1 (m) or 2 (y).
func eval(e Expr, v valuer) int {
	switch e := e.(type) {
	case nil:
		return 2
	case symExpr:
		return tri(tokValue(e.name, v))
	case notExpr:
		return 2 - eval(e.x, v)
	case parenExpr:
		return eval(e.x, v)
	case andExpr:
		return min(eval(e.x, v), eval(e.y, v))
	case orExpr:
		return max(eval(e.x, v), eval(e.y, v))
	case cmpExpr:
		l, r := tokValue(e.l, v), tokValue(e.r, v)
		c := strings.Compare(l, r)
		if li, err1 := strconv.ParseInt(l, 0, 64); err1 == nil {
			if ri, err2 := strconv.ParseInt(r, 0, 64); err2 == nil {
				c = 0
				if li < ri {
					c = -1
				} else if li > ri {
					c = 1
				}
			}
		}
		ok := false
		switch e.op {
		case "=":
			ok = l == r
		case "!=":
			ok = l != r
		case "<":
			ok = c < 0
		case "<=":
			ok = c <= 0
		case ">":
			ok = c > 0
		case ">=":
			ok = c >= 0
		}
		if ok {
			return 2
		}
		return 0
	}
	return 2
}

// unmet lists the atoms that make e false under v, as "SYM=n", "SYM=y"
// (for a negated symbol) or the failed comparison, and the symbols that
// would need to be on.
func unmet(e Expr, v valuer) (atoms []string, needs []string) {
	if eval(e, v) != 0 {
		return nil, nil
	}
	switch e := e.(type) {
	case symExpr:
		if isConst(e.name) {
			return []string{e.name}, nil
		}
		return []string{e.name + "=" + v(e.name)}, []string{e.name}
	case notExpr:
		if s, ok := e.x.(symExpr); ok && !isConst(s.name) {
			return []string{s.name + "=" + v(s.name)}, []string{"!" + s.name}
		}
		return []string{e.String()}, []string{e.String()}
	case parenExpr:
		return unmet(e.x, v)
	case andExpr, orExpr:
		var xs []Expr
		if a, ok := e.(andExpr); ok {
			xs = []Expr{a.x, a.y}
		} else {
			o := e.(orExpr)
			xs = []Expr{o.x, o.y}
		}
		for _, x := range xs {
			a, n := unmet(x, v)
			atoms = append(atoms, a...)
			needs = append(needs, n...)
		}
		if _, ok := e.(orExpr); ok && len(needs) > 1 {
			needs = []string{strings.Join(needs, " or ")}
		}
		return atoms, needs
	case cmpExpr:
		if !isConst(e.l) {
			return []string{e.l + "=" + v(e.l)}, []string{e.String()}
		}
		return []string{e.String()}, []string{e.String()}
	}
	return nil, nil
}

// conjuncts returns the top-level &&-terms of e.
func conjuncts(e Expr) []Expr {
	switch e := e.(type) {
	case nil:
		return nil
	case andExpr:
		return append(conjuncts(e.x), conjuncts(e.y)...)
	case parenExpr:
		if _, ok := e.x.(andExpr); ok {
			return conjuncts(e.x)
		}
	}
	return []Expr{e}
}

// positiveSym returns the symbol a conjunct requires to be on: X, X=y,
// X!=n; "" for anything else.
func positiveSym(e Expr) string {
	switch e := e.(type) {
	case symExpr:
		if !isConst(e.name) {
			return e.name
		}
	case cmpExpr:
		if !isConst(e.l) && ((e.op == "=" && e.r == "y") || (e.op == "!=" && e.r == "n")) {
			return e.l
		}
	case parenExpr:
		return positiveSym(e.x)
	}
	return ""
}
