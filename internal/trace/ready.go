package trace

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Ready is how bespoke decides that a traced program is ready for its
// workload: a TCP port on 127.0.0.1 accepts connections, or a regular
// expression appears in the program's output. The zero Ready means none.
type Ready struct {
	// Kind is "tcp" or "log".
	Kind string
	// Port is the TCP port, possibly the placeholder "{port}".
	Port string
	// Regex matches the program's stdout or stderr.
	Regex *regexp.Regexp
}

// ParseReady parses "tcp:PORT" (PORT may be "{port}") or "log:REGEX".
func ParseReady(s string) (Ready, error) {
	kind, arg, ok := strings.Cut(s, ":")
	if !ok || arg == "" {
		return Ready{}, fmt.Errorf("readiness check %q: want tcp:PORT or log:REGEX", s)
	}
	switch kind {
	case "tcp":
		if arg != "{port}" {
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 || n > 65535 {
				return Ready{}, fmt.Errorf("readiness check %q: port must be 1-65535 or {port}", s)
			}
		}
		return Ready{Kind: "tcp", Port: arg}, nil
	case "log":
		re, err := regexp.Compile(arg)
		if err != nil {
			return Ready{}, fmt.Errorf("readiness check %q: %w", s, err)
		}
		return Ready{Kind: "log", Regex: re}, nil
	}
	return Ready{}, fmt.Errorf("readiness check %q: unknown kind %q (want tcp:PORT or log:REGEX)", s, kind)
}

// IsZero reports whether r is no readiness check.
func (r Ready) IsZero() bool { return r.Kind == "" }

// String returns r as ParseReady reads it.
func (r Ready) String() string {
	switch r.Kind {
	case "tcp":
		return "tcp:" + r.Port
	case "log":
		return "log:" + r.Regex.String()
	}
	return ""
}

// matcher searches the program's output for the readiness regex. Writes
// from stdout and stderr are kept apart only by line.
type matcher struct {
	mu    sync.Mutex
	re    *regexp.Regexp
	line  []byte
	done  bool
	found func()
}

func (m *matcher) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done {
		return len(p), nil
	}
	m.line = append(m.line, p...)
	for {
		i := bytes.IndexByte(m.line, '\n')
		if i < 0 {
			break
		}
		if m.re.Match(m.line[:i]) {
			m.done = true
			m.found()
			return len(p), nil
		}
		m.line = m.line[i+1:]
	}
	if m.re.Match(m.line) { // a prompt without a newline
		m.done = true
		m.found()
	}
	if len(m.line) > 64<<10 {
		m.line = m.line[len(m.line)-(32<<10):]
	}
	return len(p), nil
}
