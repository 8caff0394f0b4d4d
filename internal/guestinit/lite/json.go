package lite

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A JSON value as ParseJSON returns it: Object, []any, string, Number,
// bool, or nil for null.
type (
	// Object is a JSON object's members in their order.
	Object []Member
	// Member is one name and value of an Object.
	Member struct {
		Name  string
		Value any
	}
	// Number is a JSON number's text.
	Number string
)

// ParseJSON parses one JSON value (RFC 8259) that fills b but for white
// space. Strings with invalid UTF-8 get U+FFFD in its place, as with
// encoding/json.
func ParseJSON(b []byte) (any, error) {
	p := parser{b: b}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.b) {
		return nil, p.errorf("unexpected %q after the value", p.b[p.i])
	}
	return v, nil
}

// maxDepth bounds nesting, as encoding/json's 10000 does.
const maxDepth = 10000

type parser struct {
	b []byte
	i int
}

func (p *parser) errorf(format string, args ...any) error {
	return Errorf("JSON at offset %d: "+format, append([]any{p.i}, args...)...)
}

func (p *parser) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *parser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested too deep")
	}
	if p.i >= len(p.b) {
		return nil, p.errorf("unexpected end")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		return p.string()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	for _, lit := range []struct {
		text string
		v    any
	}{{"true", true}, {"false", false}, {"null", nil}} {
		if strings.HasPrefix(string(p.b[p.i:min(len(p.b), p.i+5)]), lit.text) {
			p.i += len(lit.text)
			return lit.v, nil
		}
	}
	return nil, p.errorf("unexpected %q", p.b[p.i])
}

func (p *parser) object(depth int) (any, error) {
	p.i++ // {
	o := Object{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return o, nil
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.errorf("want a member name")
		}
		name, err := p.string()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.errorf("want ':' after a member name")
		}
		p.i++
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		o = append(o, Member{name, v})
		p.space()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			return o, nil
		}
		return nil, p.errorf("want ',' or '}' in an object")
	}
}

func (p *parser) array(depth int) (any, error) {
	p.i++ // [
	a := []any{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return a, nil
	}
	for {
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.space()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return a, nil
		}
		return nil, p.errorf("want ',' or ']' in an array")
	}
}

func (p *parser) number() (any, error) {
	start := p.i
	digits := func() int {
		n := 0
		for ; p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9'; p.i++ {
			n++
		}
		return n
	}
	if p.b[p.i] == '-' {
		p.i++
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return nil, p.errorf("bad number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.errorf("bad number")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.errorf("bad number")
		}
	}
	return Number(p.b[start:p.i]), nil
}

func (p *parser) string() (string, error) {
	p.i++ // "
	var b strings.Builder
	for {
		if p.i >= len(p.b) {
			return "", p.errorf("unterminated string")
		}
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c < 0x20:
			return "", p.errorf("control character in a string")
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return "", p.errorf("unterminated string")
			}
			e := p.b[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", p.errorf("bad \\u escape")
				}
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
						save := p.i
						p.i += 2
						if r2, ok = p.hex4(); !ok {
							return "", p.errorf("bad \\u escape")
						}
						if utf16.DecodeRune(r, r2) == utf8.RuneError {
							p.i, r2 = save, -1
						}
					}
					if r2 < 0 {
						r = utf8.RuneError
					} else {
						r = utf16.DecodeRune(r, r2)
					}
				}
				b.WriteRune(r)
			default:
				return "", p.errorf("bad escape \\%c", e)
			}
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			p.i++
		default:
			r, size := utf8.DecodeRune(p.b[p.i:])
			b.WriteRune(r) // RuneError for invalid UTF-8, as encoding/json
			p.i += size
		}
	}
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}

// errType is the error of a value of the wrong JSON type.
var errType = errors.New("wrong type")

// String is v as a string; null is "".
func String(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	}
	return "", Errorf("want a string: %w", errType)
}

// Bool is v as a bool; null is false.
func Bool(v any) (bool, error) {
	switch v := v.(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	}
	return false, Errorf("want true or false: %w", errType)
}

// Int is v as an integer of bits bits; null is 0.
func Int(v any, bits int) (int64, error) {
	switch v := v.(type) {
	case nil:
		return 0, nil
	case Number:
		n, err := strconv.ParseInt(string(v), 10, bits)
		if err != nil {
			return 0, Errorf("number %s: want an integer of %d bits", v, bits)
		}
		return n, nil
	}
	return 0, Errorf("want a number: %w", errType)
}

// Uint is v as an unsigned integer of bits bits; null is 0.
func Uint(v any, bits int) (uint64, error) {
	switch v := v.(type) {
	case nil:
		return 0, nil
	case Number:
		n, err := strconv.ParseUint(string(v), 10, bits)
		if err != nil {
			return 0, Errorf("number %s: want an unsigned integer of %d bits", v, bits)
		}
		return n, nil
	}
	return 0, Errorf("want a number: %w", errType)
}

// Array is v as an array; null is nil.
func Array(v any) ([]any, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case []any:
		return v, nil
	}
	return nil, Errorf("want an array: %w", errType)
}

// Strings is v as an array of strings; null is nil.
func Strings(v any) ([]string, error) {
	a, err := Array(v)
	if a == nil {
		return nil, err
	}
	out := make([]string, len(a))
	for i, e := range a {
		if out[i], err = String(e); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Members calls f with each member of the object v, in order, with its
// name folded by Fold; null has none. An error of f is returned with the
// member's name.
func Members(v any, f func(name string, v any) error) error {
	switch v := v.(type) {
	case nil:
		return nil
	case Object:
		for _, m := range v {
			if err := f(Fold(m.Name), m.Value); err != nil {
				return Errorf("%s: %w", m.Name, err)
			}
		}
		return nil
	}
	return Errorf("want an object: %w", errType)
}

// Fold returns name in lower case, for matching it against the lower-case
// ASCII names of Go fields as encoding/json does (strings.EqualFold):
// also the two non-ASCII letters that fold to ASCII ones, the long s and
// the Kelvin sign, become s and k.
func Fold(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		case r == '\u017f':
			return 's'
		case r == '\u212a':
			return 'k'
		}
		return r
	}, name)
}

// AppendString appends s as a JSON string, escaped as json.Marshal
// escapes it (HTML's <, > and & too), invalid UTF-8 as \ufffd.
func AppendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\b':
			b = append(b, '\\', 'b')
		case r == '\f':
			b = append(b, '\\', 'f')
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r < 0x20 || r == '<' || r == '>' || r == '&':
			b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		case r == '\u2028' || r == '\u2029':
			b = append(b, `\u202`...)
			b = append(b, hex[r&0xf])
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

// AppendStrings appends ss as a JSON array of strings.
func AppendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, s)
	}
	return append(b, ']')
}
