// Package lite is what the guest init needs of fmt and encoding/json,
// written small. The init is in every image, and those two packages (and
// the reflect code they bring) made about half of its bytes: a static Go
// binary that calls fmt.Sprintf is 188 KB larger than one that does not,
// one that calls json.Unmarshal 545 KB (measured with Go 1.26, -s -w).
//
// Sprintf and Errorf know the verbs and argument types the init uses (see
// the table in fmt_test.go, which checks them against fmt); `make vet`
// checks their calls as it checks fmt's (-printf.funcs). An argument of a
// type they do not know prints as %!v(TYPE?), never as a wrong value.
package lite

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Stringer is fmt.Stringer.
type Stringer interface{ String() string }

// Sprintf formats like fmt.Sprintf, for the verbs %s %v %q %d %x %f %w
// and %%, the flags + # 0 -, a width and a precision.
func Sprintf(format string, args ...any) string {
	s, _ := sprintf(format, args)
	return s
}

// Errorf is fmt.Errorf made with Sprintf: each %w operand is wrapped
// (errors.Is and errors.As see it).
func Errorf(format string, args ...any) error {
	s, wrapped := sprintf(format, args)
	switch len(wrapped) {
	case 0:
		return &wrapError{msg: s}
	case 1:
		return &wrapError{msg: s, err: wrapped[0]}
	}
	return &wrapErrors{msg: s, errs: wrapped}
}

type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg }
func (e *wrapError) Unwrap() error { return e.err }

type wrapErrors struct {
	msg  string
	errs []error
}

func (e *wrapErrors) Error() string   { return e.msg }
func (e *wrapErrors) Unwrap() []error { return e.errs }

// spec is one verb's flags, width and precision.
type spec struct {
	plus, sharp, zero, minus bool
	width, prec              int // -1: none
}

func sprintf(format string, args []any) (string, []error) {
	var b strings.Builder
	var wrapped []error
	next := 0
	for i := 0; i < len(format); {
		c := format[i]
		if c != '%' {
			j := strings.IndexByte(format[i:], '%')
			if j < 0 {
				j = len(format) - i
			}
			b.WriteString(format[i : i+j])
			i += j
			continue
		}
		i++
		sp := spec{width: -1, prec: -1}
	flags:
		for ; i < len(format); i++ {
			switch format[i] {
			case '+':
				sp.plus = true
			case '#':
				sp.sharp = true
			case '0':
				sp.zero = true
			case '-':
				sp.minus = true
			default:
				break flags
			}
		}
		sp.width, i = number(format, i)
		if i < len(format) && format[i] == '.' {
			sp.prec, i = number(format, i+1)
			sp.prec = max(sp.prec, 0)
		}
		if i >= len(format) {
			b.WriteString("%!(NOVERB)")
			break
		}
		verb, size := utf8.DecodeRuneInString(format[i:])
		i += size
		if verb == '%' {
			b.WriteByte('%')
			continue
		}
		if next >= len(args) {
			b.WriteString("%!" + string(verb) + "(MISSING)")
			continue
		}
		arg := args[next]
		next++
		if verb == 'w' {
			if err, ok := arg.(error); ok {
				wrapped = append(wrapped, err)
			}
			verb = 'v'
		}
		b.WriteString(pad(format1(verb, sp, arg), sp, verb))
	}
	return b.String(), wrapped
}

// number reads a decimal number at s[i:]: -1 when there is none.
func number(s string, i int) (int, int) {
	n := -1
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = max(n, 0)*10 + int(s[i]-'0')
	}
	return n, i
}

// pad widens s to sp.width: zeros after the sign or 0x for numbers with
// the 0 flag, spaces otherwise (on the right with the - flag).
func pad(s string, sp spec, verb rune) string {
	n := utf8.RuneCountInString(s)
	if sp.width <= n {
		return s
	}
	fill := sp.width - n
	switch {
	case sp.minus:
		return s + strings.Repeat(" ", fill)
	case sp.zero && (verb == 'd' || verb == 'x' || verb == 'f') && !strings.HasPrefix(s, "%!"):
		head := 0
		if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
			head = 1
		}
		if strings.HasPrefix(s[head:], "0x") {
			head += 2
		}
		return s[:head] + strings.Repeat("0", fill) + s[head:]
	}
	return strings.Repeat(" ", fill) + s
}

// format1 formats one argument.
func format1(verb rune, sp spec, arg any) string {
	switch verb {
	case 'd', 'x':
		if v, neg, ok := integer(arg); ok {
			base := 10
			if verb == 'x' {
				base = 16
			}
			s := strconv.FormatUint(v, base)
			if verb == 'x' && sp.sharp {
				s = "0x" + s
			}
			switch {
			case neg:
				s = "-" + s
			case sp.plus:
				s = "+" + s
			}
			return s
		}
	case 'f':
		if f, ok := arg.(float64); ok {
			prec := sp.prec
			if prec < 0 {
				prec = 6
			}
			s := strconv.FormatFloat(f, 'f', prec, 64)
			if sp.plus && f >= 0 {
				s = "+" + s
			}
			return s
		}
	case 'q':
		if s, ok := text(arg); ok {
			return strconv.Quote(s)
		}
	case 's', 'v':
		if s, ok := text(arg); ok {
			return s
		}
		if verb == 'v' {
			return value(arg)
		}
	}
	return "%!" + string(verb) + "(" + typeName(arg) + ")"
}

// text is the string an argument has for %s and %q.
func text(arg any) (string, bool) {
	switch v := arg.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	case error:
		return v.Error(), true
	case Stringer:
		return v.String(), true
	}
	return "", false
}

// value is %v of what is not text.
func value(arg any) string {
	if arg == nil {
		return "<nil>"
	}
	if v, neg, ok := integer(arg); ok {
		if neg {
			return "-" + strconv.FormatUint(v, 10)
		}
		return strconv.FormatUint(v, 10)
	}
	switch v := arg.(type) {
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case []string:
		return "[" + strings.Join(v, " ") + "]"
	case []int:
		s := make([]string, len(v))
		for i, n := range v {
			s[i] = strconv.Itoa(n)
		}
		return "[" + strings.Join(s, " ") + "]"
	}
	return "%!v(" + typeName(arg) + ")"
}

// integer returns the magnitude and sign of an integer argument.
func integer(arg any) (uint64, bool, bool) {
	var n int64
	switch v := arg.(type) {
	case int:
		n = int64(v)
	case int8:
		n = int64(v)
	case int16:
		n = int64(v)
	case int32:
		n = int64(v)
	case int64:
		n = v
	case uint:
		return uint64(v), false, true
	case uint8:
		return uint64(v), false, true
	case uint16:
		return uint64(v), false, true
	case uint32:
		return uint64(v), false, true
	case uint64:
		return v, false, true
	case uintptr:
		return uint64(v), false, true
	default:
		return 0, false, false
	}
	if n < 0 {
		return uint64(-n), true, true
	}
	return uint64(n), false, true
}

// typeName names an argument's type without reflect: "TYPE?" when it is
// none of the ones lite knows.
func typeName(arg any) string {
	switch arg.(type) {
	case nil:
		return "<nil>"
	case string:
		return "string"
	case bool:
		return "bool"
	case float64:
		return "float64"
	case error:
		return "error"
	}
	if _, _, ok := integer(arg); ok {
		return "integer"
	}
	return "TYPE?"
}
