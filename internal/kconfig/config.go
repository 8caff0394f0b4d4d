package kconfig

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Config is a kernel .config file: symbol values in file order, with the
// comments and blank lines kept so that Write reproduces a parsed file byte
// for byte. Symbol names are used without the CONFIG_ prefix.
//
// Values are stored as written: "y", "m", a quoted string ("\"ttyS0\""),
// a number; a "# CONFIG_X is not set" line has the value "n".
type Config struct {
	lines []configLine
	index map[string]int // symbol -> position in lines
}

type configLine struct {
	sym  string // "" for a comment or blank line kept verbatim
	val  string
	text string
}

// ParseConfig reads a .config (or a fragment in the same format).
func ParseConfig(r io.Reader) (*Config, error) {
	c := &Config{index: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		sym, val, ok, err := parseConfigLine(line)
		if err != nil {
			return nil, fmt.Errorf("parsing .config line %d: %w", n, err)
		}
		if !ok {
			c.lines = append(c.lines, configLine{text: line})
			continue
		}
		c.Set(sym, val)
		c.lines[c.index[sym]].text = line // keep the line as written
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading .config: %w", err)
	}
	return c, nil
}

// parseConfigLine splits "CONFIG_X=v" and "# CONFIG_X is not set"; ok is
// false for other comments and blank lines.
func parseConfigLine(line string) (sym, val string, ok bool, err error) {
	t := strings.TrimSpace(line)
	if t == "" {
		return "", "", false, nil
	}
	if strings.HasPrefix(t, "#") {
		rest := strings.TrimSpace(strings.TrimPrefix(t, "#"))
		if s, found := strings.CutSuffix(rest, " is not set"); found && strings.HasPrefix(s, "CONFIG_") && !strings.ContainsAny(s, " \t") {
			return strings.TrimPrefix(s, "CONFIG_"), "n", true, nil
		}
		return "", "", false, nil
	}
	name, v, found := strings.Cut(t, "=")
	if !found || !strings.HasPrefix(name, "CONFIG_") || len(name) == len("CONFIG_") {
		return "", "", false, fmt.Errorf("want CONFIG_NAME=value or a # comment, got %q", line)
	}
	return strings.TrimPrefix(name, "CONFIG_"), v, true, nil
}

// Get returns the value of sym as written ("n" for a not-set line) and
// whether the file mentions sym at all.
func (c *Config) Get(sym string) (string, bool) {
	i, ok := c.index[sym]
	if !ok {
		return "", false
	}
	return c.lines[i].val, true
}

// Value returns the value of sym, "n" when the file does not mention it.
func (c *Config) Value(sym string) string {
	if v, ok := c.Get(sym); ok {
		return v
	}
	return "n"
}

// Enabled reports whether sym is =y.
func (c *Config) Enabled(sym string) bool { return c.Value(sym) == "y" }

// Set sets sym to val ("n" writes a not-set line), in place when the file
// already mentions sym, else at the end.
func (c *Config) Set(sym, val string) {
	if c.index == nil {
		c.index = map[string]int{}
	}
	text := "CONFIG_" + sym + "=" + val
	if val == "n" {
		text = "# CONFIG_" + sym + " is not set"
	}
	if i, ok := c.index[sym]; ok {
		c.lines[i] = configLine{sym: sym, val: val, text: text}
		return
	}
	c.index[sym] = len(c.lines)
	c.lines = append(c.lines, configLine{sym: sym, val: val, text: text})
}

// Symbols returns the symbols the file mentions, in file order.
func (c *Config) Symbols() []string {
	var syms []string
	for _, l := range c.lines {
		if l.sym != "" {
			syms = append(syms, l.sym)
		}
	}
	return syms
}

// Count returns how many symbols have exactly value val, e.g. Count("y")
// for the number of built-in options.
func (c *Config) Count(val string) int {
	n := 0
	for _, l := range c.lines {
		if l.sym != "" && l.val == val {
			n++
		}
	}
	return n
}

// Write writes the file: the lines of a parsed file as they were read,
// changed values in place, new ones at the end.
func (c *Config) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, l := range c.lines {
		bw.WriteString(l.text)
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing .config: %w", err)
	}
	return nil
}

// String returns the file as Write writes it.
func (c *Config) String() string {
	var b strings.Builder
	c.Write(&b)
	return b.String()
}
